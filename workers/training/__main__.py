import sys

from stepkit.workers import main
from stepkit.workers.training import run

sys.exit(main("python -m stepkit.workers.training", run))
