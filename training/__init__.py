"""Fine-tuning model organisms: ``em train`` (LoRA SFT with TRL + peft) and its multiple-choice probes."""
