import sys

from stepkit.workers import main
from stepkit.workers.prediction import run

sys.exit(main("python -m stepkit.workers.prediction", run, batch=True))
