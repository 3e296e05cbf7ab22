// Counting, in a module of its own: relative imports work in a function.
export const MODES = ["words", "chars", "lines"];

export function count(mode, text, ignoreCase) {
  if (mode === "chars") return { mode, count: [...text].length };
  if (mode === "lines") return { mode, count: text.split(/\r?\n/).length };
  const words = text.split(/\s+/).filter(Boolean);
  const freq = new Map();
  for (const w of words) {
    const k = ignoreCase ? w.toLowerCase() : w;
    freq.set(k, (freq.get(k) ?? 0) + 1);
  }
  const top = [...freq.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, 3)
    .map(([word, n]) => ({ word, n }));
  return { mode, count: words.length, top };
}
