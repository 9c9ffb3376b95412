#!/usr/bin/env node
// npm bin entry of the workspace package: runs the built CLI (npx nx build keyserver-cli).
require('../../../dist/tools/keyserver-cli/main.js');
