"""The training configuration (one frozen dataclass, saved in the model card) and the network spec it implies."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.nn import Mode, ModelSpec, Pooling
from monitor.settings import DEFAULT_MODEL_DIR


@dataclass(frozen=True, slots=True)
class TrainConfig:
    out_dir: str = str(DEFAULT_MODEL_DIR)
    data_dir: str | None = None  # the shared data sets (None = the FINPULSE_DATA_DIR default)
    extra_data: tuple[str, ...] = ()  # "sentiment:PATH" / "topic:PATH" (text,label CSV/JSONL)
    feedback_data: tuple[str, ...] = ()  # same form: analysts' corrections, train only (never validation)
    feedback_weight: float = 4.0  # loss weight of a correction: a few fixes among thousands must still count
    use_shared: bool = True  # FPB + tweet sentiment + tweet topic (carved validation splits)
    use_real: bool = True  # real-headlines-labeled (train split; its val split validates) + our labels
    real_labels: str | None = (
        None  # labels of archive headlines (None = training/labels/real-headlines-extra.csv)
    )
    mode: Mode = "lora"
    num_layers: int | None = 24
    split_layer: int | None = 12
    pooling: Pooling = "mean"
    max_length: int = 64
    epochs: int = 3
    lr: float = 5e-4  # LoRA / trained layers
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    train_batch_size: int = 32
    lora_r: int = 16
    lora_alpha: int = 32
    label_smoothing: float = 0.0
    class_balance: float = 0.0  # class weights ∝ (1 / frequency) ** class_balance per head (0 = off)
    average_last: int = 1  # average the trained weights of the best N evaluations (checkpoint averaging)
    domain_adapter: str | None = None  # a `finpulse pretrain` adapter folded into the upper layers first
    init_from: str | None = None  # warm start: a model directory with the same spec (heads + adapters)
    max_topic_examples: int | None = None
    fpb_min_agreement: int = 50
    val_fraction: float = 0.1
    seed: int = 13
    evals_per_epoch: int = 2
    patience: int = 4
    checkpoint_every: int = 100
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget for the optimisation loop
    final_eval: bool = True  # the saved model on every validation set through the full inference path
    calibrate: bool = True  # fit per-head temperatures on the validation logits
    work_dir: str | None = None
    progress: bool = True


def make_spec(config: TrainConfig, backbone: str) -> ModelSpec:
    return ModelSpec(
        backbone=backbone,
        num_layers=config.num_layers,
        split_layer=config.split_layer,
        pooling=config.pooling,
        mode=config.mode,
        max_length=config.max_length,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
    )
