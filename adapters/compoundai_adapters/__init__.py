"""compoundai_adapters: the training stack (continued pretraining, SFT, DPO) with LoRA.

One module per stage, each with its pydantic config beside its `run_*` function:
`pretrain.py` (PretrainConfig, run_pretrain), `sft.py` (SFTConfig, run_sft), `dpo.py`
(DPOConfig, run_dpo). They share the training loop (`loop.py`), checkpoints (`checkpoint.py`),
padding-free packing (`packing.py`), artifacts (`artifacts.py`) and the forgetting check
(`forgetting.py`). Nothing here is imported by `import compoundai`.
"""

STAGES = ("pretrain", "sft", "dpo")
