import torch

# The networks under test are tiny: one thread is faster and keeps timings stable on busy machines.
torch.set_num_threads(1)
