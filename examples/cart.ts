// A tool handler in TypeScript (nexus-run picks the language by the file's
// extension). The types are stripped on the host before the sandbox compiles
// it, and every position is kept: an error's line and column, and its
// snippet, point into this file.
interface Line {
  sku: string;
  priceCents: number;
  qty: number;
}
type AddArgs = { sku: string; priceCents: number; qty?: number };

const { sku, priceCents, qty = 1 } = $args as AddArgs;
if (!Number.isInteger(qty) || qty < 1) {
  throw new RangeError('qty must be a positive integer, got ' + qty);
}
const lines = ($state.lines ?? []) as Line[];
const found: Line | undefined = lines.find((l) => l.sku === sku);
if (found) found.qty += qty;
else lines.push({ sku, priceCents, qty });

const total = (ls: readonly Line[]): number => ls.reduce((sum, l) => sum + l.priceCents * l.qty, 0);
$state.lines = lines;
$state.totalCents = total(lines);
console.log('cart:', lines.length, 'lines, total', $state.totalCents, 'cents');
$emit('cart:changed', { lines: lines.length, totalCents: $state.totalCents });
return { totalCents: $state.totalCents as number };
