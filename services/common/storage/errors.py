"""What storage raises, under names the rest of the code can catch without knowing the driver.

Aliases, not wrappers: every driver error keeps its type, so nothing that catches it changes."""
from __future__ import annotations

import gridfs.errors
import pymongo.errors

StorageError = pymongo.errors.PyMongoError  # MongoDB unreachable or refusing: usually worth a retry
DuplicateRecord = pymongo.errors.DuplicateKeyError  # a record with this _id exists already
FileError = gridfs.errors.GridFSError  # a stored file is missing or broken
CorruptFile = gridfs.errors.CorruptGridFile
