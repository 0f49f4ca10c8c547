"""The cleanup plan (shared by the Lambda and local runs) deletes only under the pipeline's tables/."""
from __future__ import annotations

import pytest

from stepkit.cleanup import plan

ROOT = "s3://bkt/predict-age/"
LOCAL = "/work/w/warehouse/"


def _payload(location: str, scope: str = "run") -> dict:
    return {"database": "db", "run_id": "r1", "scope": scope,
            "tables": [{"name": "t", "location": location, "delete_data": True}]}


@pytest.mark.parametrize("root, location, scope, deleted", [
    (ROOT, ROOT + "tables/staging/", "run", ROOT + "tables/staging/r1/"),
    (ROOT, ROOT + "tables/staging", "all", ROOT + "tables/staging/"),
    (LOCAL, LOCAL + "tables/staging/", "all", LOCAL + "tables/staging/"),
    (LOCAL, LOCAL + "tables/a/b/", "run", LOCAL + "tables/a/b/r1/"),
])
def test_deletes_under_the_tables_folder(root, location, scope, deleted):
    assert plan(_payload(location, scope), root).delete == [deleted]


@pytest.mark.parametrize("root, location", [
    (ROOT, ROOT + "tables/"),                 # every table
    (ROOT, ROOT + "models/"),                 # not a table
    (ROOT, "s3://other/predict-age/tables/x/"),  # another bucket
    (ROOT, "s3://bkt/predict-age-other/tables/x/"),  # a sibling prefix
    (ROOT, ROOT + "tables/../models/"),
    (ROOT, ROOT + "tables/x/../../"),
    (LOCAL, LOCAL + "tables/./"),             # on disk: the folder of every table
    (LOCAL, LOCAL + "tables//"),
    (LOCAL, LOCAL + "tables/x/./"),
    (LOCAL, LOCAL + "tables//x/"),
])
@pytest.mark.parametrize("scope", ["run", "all"])
def test_refuses_anything_else(root, location, scope):
    with pytest.raises(ValueError, match="outside"):
        plan(_payload(location, scope), root)
