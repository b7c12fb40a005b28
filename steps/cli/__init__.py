"""The operator command lines behind bin/: stash, push-pending, workspace, repair, redeploy, watch."""
