"""The whole system on this machine for `bin/run-local` and the benchmarks: moto's server for SQS and S3,
a bare git remote, a preview server. Development only: left out of the installed package (pyproject.toml)."""
