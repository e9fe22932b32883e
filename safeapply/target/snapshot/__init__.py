"""The snapshot program: walk roots into a manifest and keep the blobs on the host (`scan`), hand blobs and
files to the controller (`send`, `read`), put roots back exactly (`restore`), also with no controller at all
(BASE/bin/safeapply-restore.py). The controller side is `safeapply.snapshot`."""
