"""Promotion: bring a real AWS account in line with the manifest, with the very files that ran
locally (`musicpipe promote plan|apply --account ID`)."""
