import sys

from workers import main
from workers.training import run

sys.exit(main("python -m workers.training", run))
