/**
 * The metric names a PromQL expression selects, and the queries of the repository's dashboard
 * and alert rules: enough to check them against real /metrics output without a Prometheus.
 *
 * A small tokenizer, not a full parser: strings, numbers and durations are skipped; label
 * matchers ({…}) and grouping lists (by/without/on/ignoring/group_left/group_right (…)) hold
 * label names, not metrics; an identifier followed by "(" is a function or aggregation.
 */
import * as fs from "node:fs";
import { ALERTS_FILE, DASHBOARD_FILE, loadAlertRules } from "../../components/monitoring";

const KEYWORDS = new Set(["and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"]);
const AGGREGATIONS = new Set([
  "sum",
  "avg",
  "min",
  "max",
  "count",
  "stddev",
  "stdvar",
  "topk",
  "bottomk",
  "quantile",
  "count_values",
  "group",
  "limitk",
  "limit_ratio",
]);
const GROUPING = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let i = 0;
  // Grafana template variables ($namespace, ${datasource}, $__rate_interval) are not PromQL.
  const src = expr.replace(/\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g, "x");
  const skipBalanced = (open: string, close: string) => {
    let depth = 0;
    for (; i < src.length; i++) {
      const c = src[i];
      if (c === '"' || c === "'" || c === "`") {
        skipString(c);
        continue;
      }
      if (c === open) depth++;
      else if (c === close && --depth === 0) {
        i++;
        return;
      }
    }
    throw new Error(`unbalanced ${open} in ${expr}`);
  };
  const skipString = (quote: string) => {
    for (i++; i < src.length && src[i] !== quote; i++) if (src[i] === "\\") i++;
  };
  while (i < src.length) {
    const c = src[i] as string;
    if (c === '"' || c === "'" || c === "`") {
      skipString(c);
      i++;
    } else if (c === "{") {
      skipBalanced("{", "}");
    } else if (c === "[") {
      skipBalanced("[", "]");
    } else if (/[0-9.]/.test(c)) {
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][+-]?[0-9]+)?[a-zA-Z]*)/.exec(src.slice(i));
      i += m ? m[0].length : 1;
    } else if (/[A-Za-z_:]/.test(c)) {
      const word = (/^[A-Za-z_:][A-Za-z0-9_:]*/.exec(src.slice(i)) as RegExpExecArray)[0];
      i += word.length;
      const rest = src.slice(i);
      const next = rest.trimStart()[0];
      if (GROUPING.has(word)) {
        // by (a, b) / on (x) group_left (y): label lists, skipped whole.
        i += rest.length - rest.trimStart().length;
        if (src[i] === "(") skipBalanced("(", ")");
      } else if (
        next === "(" ||
        KEYWORDS.has(word) ||
        AGGREGATIONS.has(word) ||
        word === "inf" ||
        word === "nan"
      ) {
        // a function or aggregation, or an operator keyword
      } else {
        names.add(word);
      }
    } else {
      i++;
    }
  }
  return [...names];
}

export interface Query {
  where: string;
  expr: string;
}

/** Every PromQL query of deploy/grafana (panel targets, variables) and deploy/prometheus. */
export function repositoryQueries(): Query[] {
  const queries: Query[] = [];
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, "utf8")) as {
    panels: { title: string; targets?: { expr: string }[] }[];
    templating?: { list: { name: string; type: string; query?: { query?: string } }[] };
  };
  for (const panel of dashboard.panels)
    for (const t of panel.targets ?? []) queries.push({ where: `panel "${panel.title}"`, expr: t.expr });
  for (const v of dashboard.templating?.list ?? []) {
    const q = v.type === "query" ? v.query?.query : undefined;
    const inner = q && /^label_values\((.+),\s*[A-Za-z_]+\)$/.exec(q)?.[1];
    if (inner) queries.push({ where: `variable $${v.name}`, expr: inner });
  }
  for (const group of loadAlertRules().groups)
    for (const rule of group.rules)
      queries.push({ where: `alert ${rule.alert} (${ALERTS_FILE})`, expr: rule.expr });
  return queries;
}

/** Metric names with at least one sample in Prometheus text exposition (`# …` lines aside). */
export function exposedMetrics(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)/.exec(line);
    if (m?.[1]) names.add(m[1]);
  }
  return names;
}

/** The value of the sample `name{labels…}` whose labels include all of `labels` (summed). */
export function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const body = /\{(.*)\}/.exec(line)?.[1] ?? "";
    const have = Object.fromEntries(
      [...body.matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}
