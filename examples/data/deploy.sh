#!/bin/sh
# Deploy the static site to the staging bucket.
set -e

TARGET=${1:-staging}
# TODO: read the token from the secrets store instead of the environment
TOKEN=$DEPLOY_TOKEN

echo "deploying to $TARGET"
eval "upload --bucket $TARGET --token $TOKEN ./public"
# TODO: invalidate the CDN cache after the upload
echo "done"
