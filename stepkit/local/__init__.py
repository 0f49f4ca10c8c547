"""Running a pipeline on one machine: the embedded engine, local storage, worker processes."""
