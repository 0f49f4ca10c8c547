"""`stepkit plan` and `stepkit cost`: a run's wall time and cost on AWS, before and after.

model.py prices each state of the compiled state machine; critical_path.py totals them along
the run's critical path; prices.py and coefficients.py hold every figure with its source;
checks.py, optimize.py and cost.py build on those.
"""
