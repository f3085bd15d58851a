// Compile the Solidity contracts with the pinned solc-js (tools/package.json)
// and write one artifact per contract into contracts/build/.
//
// Usage: node contracts/compile.mjs [--out-dir DIR]
//
// The output is deterministic: fixed compiler settings, keys sorted, two-space
// indent and a trailing newline, so tests/test_contract_artifact.py can
// recompile and compare the committed artifacts byte for byte.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const CONTRACTS_DIR = dirname(fileURLToPath(import.meta.url));
const PROJECT_ROOT = resolve(CONTRACTS_DIR, "..");
const require = createRequire(join(PROJECT_ROOT, "tools", "package.json"));
const solc = require("solc");

// Source path relative to contracts/ -> contract name.
const CONTRACTS = {
  "Consortium.sol": "Consortium",
  "bench/NaiveRegistry.sol": "NaiveRegistry",
};

const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
};

function parseOutDir(argv) {
  const index = argv.indexOf("--out-dir");
  if (index === -1) {
    return join(CONTRACTS_DIR, "build");
  }
  const value = argv[index + 1];
  if (!value) {
    throw new Error("--out-dir needs a folder path");
  }
  return resolve(value);
}

function sortKeys(value) {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === "object") {
    const sorted = {};
    for (const key of Object.keys(value).sort()) {
      sorted[key] = sortKeys(value[key]);
    }
    return sorted;
  }
  return value;
}

function compile() {
  const sources = {};
  for (const path of Object.keys(CONTRACTS)) {
    sources[path] = { content: readFileSync(join(CONTRACTS_DIR, path), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));

  const errors = (output.errors ?? []).filter((entry) => entry.severity === "error");
  for (const entry of output.errors ?? []) {
    process.stderr.write(entry.formattedMessage ?? `${entry.message}\n`);
  }
  if (errors.length > 0) {
    throw new Error(`solc reported ${errors.length} error(s)`);
  }
  return output;
}

function writeArtifacts(output, outDir) {
  mkdirSync(outDir, { recursive: true });
  for (const [path, name] of Object.entries(CONTRACTS)) {
    const contract = output.contracts[path][name];
    const artifact = {
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      compiler: { name: "solc-js", version: solc.version() },
      contractName: name,
      deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
      settings: SETTINGS,
      source: `contracts/${path}`,
    };
    const file = join(outDir, `${name}.json`);
    writeFileSync(file, `${JSON.stringify(sortKeys(artifact), null, 2)}\n`);
    process.stdout.write(`wrote ${file}\n`);
  }
}

writeArtifacts(compile(), parseOutDir(process.argv.slice(2)));
