"""kubetune: LLM fine-tuning as a declarative Kubernetes resource (FineTuneJob)."""

__version__ = "0.1.0"
