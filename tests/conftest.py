import os
import warnings

# MuJoCo -v4 ids warn that v5 exists; the paper used v4.
warnings.filterwarnings("ignore", message=".*is out of date.*")
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
