// Run an ONNX file in onnxruntime-node: the proof that an exported model needs no Python.
//
//   node scripts/node/run_model.js model.onnx inputs.json
//
// inputs.json: {"name": {"type": "string" | "float32" | "float64", "data": [...]}, ...},
// every tensor 1-D (toolkit's table models take one 1-D input per raw column) unless
// "dims" is given; null in a float tensor is NaN (a missing value, as JSON has no NaN). Prints {"output name": [...flat values], ...} as JSON on stdout.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array };

function tensor(spec) {
  const dims = spec.dims || [spec.data.length];
  if (spec.type === 'string') return new ort.Tensor('string', spec.data, dims);
  const values = spec.type === 'int64'
    ? spec.data.map(BigInt)
    : spec.data.map((value) => (value === null ? NaN : value));
  return new ort.Tensor(spec.type, ARRAYS[spec.type].from(values), dims);
}

async function main() {
  const [modelPath, inputsPath] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
  const specs = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const feeds = Object.fromEntries(Object.entries(specs).map(([k, v]) => [k, tensor(v)]));
  const results = await session.run(feeds);
  const plain = Object.fromEntries(
    Object.entries(results).map(([k, v]) => [k, Array.from(v.data, Number)]));
  process.stdout.write(JSON.stringify(plain) + '\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
