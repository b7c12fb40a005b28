"""Publishing a build to its S3 bucket: the hash plan, the hash upload, the aws-cli sync, content types, report."""
