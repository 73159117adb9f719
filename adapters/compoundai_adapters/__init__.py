"""compoundai_adapters: the training stack (continued pretraining, SFT, DPO) with LoRA.

One module per stage, each with its pydantic config beside its `run_*` function:
`pretrain.py` (PretrainConfig, run_pretrain), `sft.py` (SFTConfig, run_sft), `dpo.py`
(DPOConfig, run_dpo). They share the training loop (`loop.py`), checkpoints (`checkpoint.py`),
padding-free packing (`packing.py`) and artifacts (`artifacts.py`: the PEFT adapter and its
typed manifest); the forgetting check's perplexity is the core's
(`compoundai.generators.perplexity`), shared with the reports. Nothing here is imported by
`import compoundai`.
"""

STAGES = ("pretrain", "sft", "dpo")
