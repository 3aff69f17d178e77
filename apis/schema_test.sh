#!/bin/sh
# Runs the schema test with Debian's python3 (python3-jsonschema, python3-yaml).
exec /usr/bin/python3 "$TEST_SRCDIR/$TEST_WORKSPACE/apis/schema_test.py"
