"""The agents' tests, in folders that mirror ``agents/`` (``common/``, ``imm/``, ``reinforce/``, ``sac/``,
``teachers/``; PPO and A2C beside REINFORCE in ``test_agents.py``, which checks what every algorithm
shares). This folder holds ``hand_losses.py``, the losses written out by hand that the folders below
import: pytest puts a ``conftest.py``'s folder on ``sys.path``, so ``from hand_losses import …`` works
from each of them."""
