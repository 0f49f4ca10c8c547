import sys

from workers import main
from workers.prediction import run

sys.exit(main("python -m workers.prediction", run, batch=True))
