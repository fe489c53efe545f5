"""The real infrastructure kubetune's tests and developers run against, on one machine.

No container engine and no network beyond package registries: the Kubernetes control
plane, etcd, KWOK and helm are compiled from the Go module proxy (:mod:`.build`,
versions pinned in :mod:`.versions`) and started as local processes (:mod:`.cluster`);
S3 is SeaweedFS from PyPI (:mod:`.s3`); Prometheus and promtool come from Debian
(:mod:`.prometheus`). ``python -m devenv --help`` shows the command line.
"""
