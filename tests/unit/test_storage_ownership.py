"""Only services/common/storage/ talks to MongoDB: no other module of services/ imports the driver
(pymongo, gridfs, bson), calls a collection's methods or names a collection. Read with `ast`, so a
comment or a docstring that mentions them is no violation."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
OWNER = SERVICES / "common" / "storage"
DRIVER_MODULES = {"pymongo", "gridfs", "bson", "motor"}
# Methods only a MongoDB collection has (`find` and `distinct` are left out: str.find is everywhere).
COLLECTION_METHODS = {"find_one", "find_one_and_update", "find_one_and_delete", "find_one_and_replace",
                      "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one",
                      "delete_many", "count_documents", "estimated_document_count", "aggregate", "bulk_write",
                      "create_index", "create_indexes", "drop_index", "list_collection_names", "get_collection"}
# The package's own handles on raw collections and databases: outside it, holding one is access too.
RAW_HANDLES = {"collection", "records", "client"}
COLLECTIONS = {"jobs", "uploads", "tus_uploads", "notifications", "webhook_secrets", "deleted_jobs", "janitor",
               "janitor_stats", "idempotency_keys", "presets", "quota_usage", "mp3_release_leases", "fs", "chunks"}


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in DRIVER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in DRIVER_MODULES:
                found.append(f"imports from {node.module}")
        elif isinstance(node, ast.Call) and _called_name(node) in RAW_HANDLES:
            found.append(f"takes a raw handle ({_called_name(node)}())")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in COLLECTION_METHODS:
                found.append(f"calls .{node.func.attr}() of a collection")
            elif node.func.attr in COLLECTIONS and not node.args and not node.keywords:
                found.append(f"opens the {node.func.attr} collection")
        elif isinstance(node, ast.Attribute) and node.attr == "fs":
            found.append("opens GridFS (.fs)")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and node.slice.value in COLLECTIONS:
            found.append(f"names the {node.slice.value} collection")
    return found


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _modules() -> list[Path]:
    return sorted(path for path in SERVICES.rglob("*.py") if OWNER not in path.parents)


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(SERVICES)))
def test_no_module_outside_the_storage_package_touches_mongodb(path):
    assert violations(path.read_text()) == []


def test_the_storage_package_is_where_the_driver_is_used():
    assert any(violations(path.read_text()) for path in OWNER.glob("*.py"))


@pytest.mark.parametrize("source", [
    "import pymongo", "import gridfs.errors", "from bson import Binary", "from pymongo import ReturnDocument",
    "storage.jobs().find({})", "x.uploads()", "client()[db]['notifications']", "database.fs.files",
    "records().quota_usage.update_one({}, {})", "collection().delete_many({})",
    "job_records.collection().find({})", "connection.records().jobs.find({})", "client().admin",
])
def test_each_kind_of_access_is_caught(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "# import pymongo: storage.jobs().find_one({})", '"""calls storage.jobs().update_one"""',
    "buffer.find(b'x')", "from services.common.storage import job_records\njob_records.get_job('x')",
    "jobs.view(job)", "uploads.slot()", "request.files['file']",
])
def test_comments_docstrings_and_lookalikes_pass(source):
    assert violations(source) == []
