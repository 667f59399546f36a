"""Code shared by the server and the client images (stdlib only).

Written once here and copied into both images at build time.
"""
