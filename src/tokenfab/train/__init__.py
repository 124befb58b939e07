"""Training on any chip: step time, MFU, days and cost of a run, and RL post-training steps.

`estimate_training` searches the training mappings (`train.search`) of a model on a chip; the
physics lives in `flops` (6N + attention), `layer` (forward/backward of a micro-batch from the
inference engine's operator graph), `memory`, `schedule` (pipeline bubbles), `collectives` and
`goodput`; `stack` holds the job and the few physical constants of a training stack.
"""

from tokenfab.train.estimate import estimate_training
from tokenfab.train.stack import TrainingJob, TrainingStack

__all__ = ["TrainingJob", "TrainingStack", "estimate_training"]
