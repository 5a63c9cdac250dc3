"""``python -m tests.gcs_emulator start ...``: gcp-storage-emulator, with the one header
it leaves out added.

Google Cloud Storage sends ``x-goog-generation`` (the object's version) with every
download; TensorStore's OCDBT driver, which Orbax uses for array files, reads it and
fails with "Malformed StorageGeneration" without it. The emulator keeps the generation
in each object's record but does not send the header; this wrapper sends it, so the
emulator behaves as the real service does for the requests the tests make.
"""

import sys

from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.handlers import objects

_download = objects.download


def download_with_generation(request, response, storage, *args, **kwargs):
    _download(request, response, storage, *args, **kwargs)
    try:
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except Exception:  # noqa: BLE001 - not found: the original handler set the status
        return
    response["x-goog-generation"] = str(obj.get("generation"))
    response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))


objects.download = download_with_generation  # the JSON API's ?alt=media calls it by name
server.HANDLERS = tuple(
    (pattern, {m: (download_with_generation if h is _download else h) for m, h in routes.items()})
    for pattern, routes in server.HANDLERS)

if __name__ == "__main__":
    main(sys.argv[1:])
