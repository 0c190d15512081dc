"""Container images for the node agent: an OCI image store on disk, the built-in busybox and
pause images, pulls with skopeo and `docker save`/OCI archive loading (service.ImageManager)."""
