"""Result manifests for the package: the code of `bin/result_manifest.py`, whose rules the
pipeline's last task applies to every run."""

from cnvkit_nf.pipeline_files import load_bin

_manifest = load_bin("result_manifest")
NAME = _manifest.NAME
hexdigest = _manifest.hexdigest
covered = _manifest.covered
write = _manifest.write
publish = _manifest.publish
Interrupted = _manifest.Interrupted
verify = _manifest.verify
