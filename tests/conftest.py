import os
import warnings

# MuJoCo -v4 ids warn that v5 exists; the paper used v4.
warnings.filterwarnings("ignore", message=".*is out of date.*")
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")

import torch  # noqa: E402

# Tests run in two pytest-xdist workers on two cores: one torch thread each avoids oversubscription.
torch.set_num_threads(1)
