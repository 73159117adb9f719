// compoundai ui: sortable and filterable tables, the start form, live job progress, the
// playground. No framework, nothing fetched from outside; every value goes in as text.
"use strict";

const POST_HEADERS = { "Content-Type": "application/json", "X-CompoundAI-UI": "1" };

function cellValue(row, index) {
  const cell = row.children[index];
  if (!cell) return "";
  const tagged = cell.querySelector("[data-value]");
  return tagged ? tagged.dataset.value : cell.textContent.trim();
}

function sortBy(table, index, dir) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index), y = cellValue(b, index);
    const nx = parseFloat(x), ny = parseFloat(y);
    const cmp = !isNaN(nx) && !isNaN(ny) && String(nx) !== "NaN" ? nx - ny : x.localeCompare(y);
    return dir === "asc" ? cmp : -cmp;
  });
  rows.forEach((r) => body.appendChild(r));
}

function setupSortable() {
  document.querySelectorAll("table.sortable").forEach((table) => {
    Array.from(table.tHead.rows[0].cells).forEach((th, index) => {
      th.addEventListener("click", () => {
        const dir = th.dataset.dir === "asc" ? "desc" : "asc";
        table.querySelectorAll("th").forEach((h) => delete h.dataset.dir);
        th.dataset.dir = dir;
        sortBy(table, index, dir);
      });
    });
  });
}

function setupFilters() {
  document.querySelectorAll("input.filter[data-filter]").forEach((input) => {
    const table = document.getElementById(input.dataset.filter);
    if (!table) return;
    input.addEventListener("input", () => {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      Array.from(table.tBodies[0].rows).forEach((row) => {
        const text = row.textContent.toLowerCase();
        row.hidden = !words.every((w) => text.includes(w));
      });
    });
  });
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: POST_HEADERS,
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const text = (data.error && data.error.message) || `request failed (${response.status})`;
    throw new Error(text);
  }
  return data;
}

function setupStartForm() {
  const form = document.getElementById("start-form");
  if (!form) return;
  const error = document.getElementById("start-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const button = document.getElementById("start");
    button.disabled = true;
    showError(error, "");
    try {
      const job = await postJSON("/api/jobs", {
        task_file: data.get("task_file"),
        lanes: data.getAll("lanes"),
        limit: data.get("limit") || null,
        out_dir: data.get("out_dir") || null,
      });
      window.location.assign(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      showError(error, err.message);
      button.disabled = false;
    }
  });
}

function renderJob(state) {
  document.getElementById("job-state").textContent = state.state;
  document.getElementById("job-elapsed").textContent = `${state.elapsed_s} s`;
  document.getElementById("job-message").textContent = state.message;
  const log = document.getElementById("progress");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = state.lines.join("\n");
  if (atBottom) log.scrollTop = log.scrollHeight;
  const done = ["finished", "failed", "cancelled"].includes(state.state);
  const cancel = document.getElementById("cancel");
  cancel.disabled = done;
  if (state.run_url) {
    const link = document.getElementById("job-run-link");
    link.href = state.run_url;
    document.getElementById("job-result").hidden = false;
  }
  document.getElementById("job").dataset.state = state.state;
}

function setupJob() {
  const box = document.getElementById("job");
  if (!box) return;
  const id = box.dataset.job;
  const source = new EventSource(`/api/jobs/${encodeURIComponent(id)}/events`);
  source.onmessage = (event) => renderJob(JSON.parse(event.data));
  source.addEventListener("end", () => source.close());
  source.onerror = () => {
    // the server went away or the job ended: stop retrying, say so if it was mid-run
    source.close();
    if (!["finished", "failed", "cancelled"].includes(box.dataset.state || "")) {
      document.getElementById("job-message").textContent = "lost the connection to the UI server";
    }
  };
  document.getElementById("cancel").addEventListener("click", async () => {
    try {
      renderJob(await postJSON(`/api/jobs/${encodeURIComponent(id)}/cancel`, {}));
    } catch (err) {
      document.getElementById("job-message").textContent = err.message;
    }
  });
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function renderPlay(result) {
  document.getElementById("play-answer").textContent = result.answer;
  const facts = [`${result.system} (${result.lane})`, `${result.latency_ms} ms`];
  if (result.abstained) facts.push("abstained");
  if (result.citations.length) facts.push(`cites ${result.citations.join(", ")}`);
  if (result.text && result.text !== result.answer) facts.push(`raw text: ${result.text}`);
  document.getElementById("play-facts").textContent = facts.join(" · ");
  const prompt = document.getElementById("play-prompt");
  prompt.replaceChildren(
    ...result.prompt.map((turn) => {
      const box = element("div", undefined, "chat-turn");
      box.append(element("b", turn.role), element("pre", turn.content));
      return box;
    }),
  );
  const passages = document.getElementById("play-passages");
  const count = Math.max(result.retrieved_ids.length, result.passages.length);
  const items = [];
  for (let i = 0; i < count; i++) {
    const item = element("li", undefined, "passage");
    item.append(element("code", result.retrieved_ids[i] || ""), element("div", result.passages[i] || ""));
    items.push(item);
  }
  if (!items.length) items.push(element("li", "this system retrieves nothing"));
  passages.replaceChildren(...items);
  document.getElementById("play-result").hidden = false;
}

function setupPlayground() {
  const form = document.getElementById("play-form");
  if (!form) return;
  const error = document.getElementById("play-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("play");
    button.disabled = true;
    showError(error, "");
    try {
      renderPlay(
        await postJSON("/api/play", {
          system: document.getElementById("play-system").value,
          input: document.getElementById("play-input").value,
        }),
      );
    } catch (err) {
      showError(error, err.message);
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupSortable();
  setupFilters();
  setupStartForm();
  setupJob();
  setupPlayground();
});
