"""`mt schema` is a valid JSON Schema that accepts every example Service manifest of the seeds
and rejects manifests with unknown fields or wrong types."""
import glob
import json
import os
import subprocess
import sys

import jsonschema
import yaml

root = os.path.join(os.environ.get("TEST_SRCDIR", "."), os.environ.get("TEST_WORKSPACE", ""))
mt = os.path.join(root, "cmd/mt/mt")
schema = json.loads(subprocess.check_output([mt, "schema"]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

failures = 0
checked = 0
for path in sorted(glob.glob(os.path.join(root, "examples/**/*.yaml"), recursive=True)):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc or "security" in doc and "profiles" in doc.get("security", {}):
                continue  # SecurityProfile documents are not Services
            errors = list(validator.iter_errors(doc))
            checked += 1
            if errors:
                failures += 1
                print("FAIL %s: %s" % (path, errors[0].message))
for bad in ({"name": "x", "driver": "exec", "resources": {"memmory": "1g"}},
            {"name": "x", "driver": "exce"},
            {"name": "x", "driver": "exec", "count": "three"},
            {"name": "Bad_Name", "driver": "exec"}):
    if validator.is_valid(bad):
        failures += 1
        print("FAIL: the schema accepted %s" % bad)
print("%d example documents checked, %d failures" % (checked, failures))
sys.exit(1 if failures or checked < 10 else 0)
