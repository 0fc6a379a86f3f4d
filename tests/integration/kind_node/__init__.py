"""A node for tests/integration/test_kind_path.py: kubelet, scheduler binding, kube-proxy and DNS in one process.

No container runtime: pods are processes in Linux namespaces (network.py, launcher.py),
the image is the Dockerfile read over this checkout's virtualenv (image.py), volumes and
environment come from the API as a kubelet fills them (volumes.py), pods live and report
like a kubelet's, native sidecars included (pods.py), Services are proxied in userspace
and named in /etc/hosts (services.py); __main__.py ties them to the API server's watches.
"""
