"""The device-activity pipeline's export: its activity table as one CSV, for another team.

The container command of the pipeline's `Export` stage (a task with its own image): it reads the
worker config stepkit deploys (`--config`: the pipeline, and `root`, where its tables are), reads
this run's activity table and writes `<root>/runs/<run id>/exports/activity_by_segment.csv`. It prints
one JSON line (rows, path), which a local run records. It needs only pyarrow.
"""
from __future__ import annotations

import argparse
import json

import pyarrow.csv as csv
import pyarrow.dataset as ds
import pyarrow.fs as fs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--run-id", required=True)
    args = ap.parse_args()
    files, path = fs.FileSystem.from_uri(args.config) if "://" in args.config else (fs.LocalFileSystem(), args.config)
    with files.open_input_stream(path) as f:
        config = json.loads(f.read())
    root = config["root"]
    table = config["pipeline"]["tables"]["activity"]
    source = f"{root}tables/{table}/{args.run_id}/"
    rows = ds.dataset(source, format="parquet").to_table().sort_by([("device_type", "ascending"),
                                                                   ("seniority_level", "ascending")])
    out = f"{root}runs/{args.run_id}/exports/activity_by_segment.csv"
    out_files, out_path = fs.FileSystem.from_uri(out) if "://" in out else (fs.LocalFileSystem(), out)
    out_files.create_dir(out_path.rsplit("/", 1)[0], recursive=True)
    with out_files.open_output_stream(out_path) as f:
        csv.write_csv(rows, f)
    print(json.dumps({"rows": rows.num_rows, "path": out}))


if __name__ == "__main__":
    main()
