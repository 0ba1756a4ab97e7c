/**
 * Helpers for the runtime's integration tests: CRDs and objects on the shared control plane,
 * loopback upstreams whose health can be switched, and the runtime as real child processes.
 */
import * as http from "node:http";
import * as https from "node:https";
import type * as net from "node:net";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { chainInfo } from "../../../api/chains";
import { CRD_DEFINITIONS, crdManifest } from "../../../api/crds";
import { API_VERSION, GROUP, VERSION } from "../../../api/resources";
import type { ControlPlane } from "../../harness/controlPlane";
import { freePort, type ManagedProcess, startProcess, tail, waitFor } from "../../harness/processes";

export const REPO = path.resolve(__dirname, "../../..");
export const PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
export const BASE_SEPOLIA = "eip155:84532";
export const USDC = chainInfo(BASE_SEPOLIA)!.usdc!;

export interface ApiResponse {
  status: number;
  body: string;
  json<T = unknown>(): T;
}

/** An authenticated API request with an explicit content type (merge patches need one). */
export function api(
  cp: ControlPlane,
  method: string,
  apiPath: string,
  body?: unknown,
  contentType = "application/json",
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      `${cp.server}${apiPath}`,
      {
        method,
        rejectUnauthorized: false,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${cp.token}`,
          accept: "application/json",
          ...(payload ? { "content-type": contentType, "content-length": Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${apiPath}: timeout`)));
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

function expectStatus(res: ApiResponse, ok: number[], what: string): ApiResponse {
  if (!ok.includes(res.status)) throw new Error(`${what} failed (${res.status}): ${res.body}`);
  return res;
}

/** Installs (or keeps) the obol.org CRDs and waits until the API serves them. */
export async function installCrds(cp: ControlPlane): Promise<void> {
  for (const def of CRD_DEFINITIONS) {
    const res = await api(
      cp,
      "POST",
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
      crdManifest(def),
    );
    expectStatus(res, [201, 409], `creating CRD ${def.plural}`);
  }
  await waitFor(
    "the obol.org CRDs to be served",
    async () => {
      const res = await api(cp, "GET", `/apis/${GROUP}/${VERSION}`);
      if (res.status !== 200) return false;
      const names = res.json<{ resources: { name: string }[] }>().resources.map((r) => r.name);
      return CRD_DEFINITIONS.every((d) => names.includes(d.plural));
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

export async function createNamespace(cp: ControlPlane, name: string): Promise<void> {
  const res = await api(cp, "POST", "/api/v1/namespaces", {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name },
  });
  expectStatus(res, [201, 409], `creating namespace ${name}`);
}

export function crPath(ns: string, plural: string, name?: string): string {
  return `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}${name ? `/${name}` : ""}`;
}

export async function createObject(
  cp: ControlPlane,
  ns: string,
  plural: string,
  kind: string,
  name: string,
  spec: unknown,
) {
  const res = await api(cp, "POST", crPath(ns, plural), {
    apiVersion: API_VERSION,
    kind,
    metadata: { name, namespace: ns },
    spec,
  });
  return expectStatus(res, [201], `creating ${kind} ${ns}/${name}`).json<KubeObject>();
}

export async function deleteObject(
  cp: ControlPlane,
  ns: string,
  plural: string,
  name: string,
): Promise<void> {
  expectStatus(
    await api(cp, "DELETE", crPath(ns, plural, name)),
    [200, 202, 404],
    `deleting ${plural}/${name}`,
  );
}

export async function mergePatch(cp: ControlPlane, ns: string, plural: string, name: string, patch: unknown) {
  const res = await api(cp, "PATCH", crPath(ns, plural, name), patch, "application/merge-patch+json");
  return expectStatus(res, [200], `patching ${plural}/${name}`).json<KubeObject>();
}

export interface KubeCondition {
  type: string;
  status: string;
  reason: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface KubeObject {
  metadata: { name: string; namespace: string; generation?: number; uid: string };
  spec: Record<string, unknown>;
  status?: { conditions?: KubeCondition[]; [key: string]: unknown };
}

export async function getObject(
  cp: ControlPlane,
  ns: string,
  plural: string,
  name: string,
): Promise<KubeObject | undefined> {
  const res = await api(cp, "GET", crPath(ns, plural, name));
  if (res.status === 404) return undefined;
  return expectStatus(res, [200], `reading ${plural}/${name}`).json<KubeObject>();
}

export function condition(obj: KubeObject | undefined, type: string): KubeCondition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until condition `type` has `status` (and `reason`, if given); returns the object. */
export async function waitForCondition(
  cp: ControlPlane,
  ns: string,
  plural: string,
  name: string,
  want: { type: string; status: string; reason?: string },
  opts: { timeoutMs?: number; logs?: ManagedProcess[] } = {},
): Promise<KubeObject> {
  let last: KubeObject | undefined;
  await waitFor(
    `${plural}/${name} ${want.type}=${want.status}${want.reason ? ` (${want.reason})` : ""}`,
    async () => {
      last = await getObject(cp, ns, plural, name);
      const c = condition(last, want.type);
      return c?.status === want.status && (!want.reason || c.reason === want.reason);
    },
    {
      timeoutMs: opts.timeoutMs ?? 30_000,
      intervalMs: 200,
      describe: () =>
        `last status: ${JSON.stringify(last?.status)}\n${(opts.logs ?? []).map((p) => `--- ${p.name}\n${tail(p.logFile, 15)}`).join("\n")}`,
    },
  );
  return last!;
}

export function offerSpec(port: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "http",
    description: "Echoes what you send",
    upstream: { url: `http://127.0.0.1:${port}`, healthPath: "/health" },
    payment: {
      scheme: "exact",
      network: BASE_SEPOLIA,
      payTo: PAY_TO,
      asset: USDC,
      price: { perRequest: "0.001" },
      maxTimeoutSeconds: 300,
    },
    path: "/services/echo",
    routes: [
      { path: "/free/*", gate: "free" },
      { path: "/health", gate: "free", methods: ["GET"] },
    ],
    ...overrides,
  };
}

/** What a paid test offer needs: where it is served from and what it is paid in. */
export interface PaidOfferArgs {
  upstreamPort: number;
  network: string;
  payTo: string;
  /** The token, as the ServiceOffer's `payment.asset` (address, decimals, EIP-712 domain). */
  asset: object;
  /** Served under `/services/<name>` unless given. */
  path?: string;
  /** Further spec fields (type, model, description, routes, ...). */
  extra?: Record<string, unknown>;
  /** Logs shown when the offer does not become Ready. */
  logs?: ManagedProcess[];
  /** Gateways' public URLs that must route the offer (answer 402) before this resolves. */
  routedAt?: string[];
}

/**
 * Creates a ServiceOffer selling a loopback upstream for 0.001 of `asset` per request with the
 * exact scheme, and waits until it is Ready and every gateway in `routedAt` answers its path with 402.
 */
export async function createPaidOffer(
  cp: ControlPlane,
  ns: string,
  name: string,
  args: PaidOfferArgs,
): Promise<void> {
  const offerPath = args.path ?? `/services/${name}`;
  await createObject(cp, ns, "serviceoffers", "ServiceOffer", name, {
    type: "http",
    upstream: { url: `http://127.0.0.1:${args.upstreamPort}`, healthPath: "/health" },
    payment: {
      scheme: "exact",
      network: args.network,
      payTo: args.payTo,
      asset: args.asset,
      price: { perRequest: "0.001" },
      maxTimeoutSeconds: 120,
    },
    path: offerPath,
    ...args.extra,
  });
  await waitForCondition(
    cp,
    ns,
    "serviceoffers",
    name,
    { type: "Ready", status: "True" },
    { logs: args.logs ?? [] },
  );
  // A gateway routes a Ready offer within about a second of its status change.
  for (const base of args.routedAt ?? []) {
    await waitFor(
      `${name} routed at ${base}`,
      async () => (await fetch(`${base}${offerPath}`)).status === 402,
      {
        timeoutMs: 15_000,
      },
    );
  }
}

/**
 * A loopback HTTP upstream: /health and /health/* answer 200 (after `slowHealthMs`, when set),
 * the rest echoes.
 */
export class Upstream {
  server: http.Server | undefined;
  port = 0;
  slowHealthMs = 0;
  readonly requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  private readonly sockets = new Set<net.Socket>();

  async start(port?: number): Promise<void> {
    this.port = port ?? (this.port || (await freePort()));
    const server = http.createServer((req, res) => {
      this.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      if (req.url === "/health" || req.url?.startsWith("/health/")) {
        setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end("ok"), this.slowHealthMs);
        return;
      }
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.stringify({
          echo: true,
          method: req.method,
          url: req.url,
          userAgent: req.headers["user-agent"],
          forwardedFor: req.headers["x-forwarded-for"],
          forwardedPrefix: req.headers["x-forwarded-prefix"],
          body: Buffer.concat(chunks).toString("utf8"),
        });
        res.writeHead(200, {
          "content-type": "application/json",
          connection: "keep-alive",
          "keep-alive": "timeout=5",
        });
        res.end(body);
      });
    });
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", resolve);
    });
    this.server = server;
  }

  /** Takes the upstream down: connections are refused until start() again. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** tsx's loader (ESM and CommonJS hooks) as a file URL, so it resolves from any cwd. */
export const TSX_LOADER = pathToFileURL(require.resolve("tsx")).href;

/**
 * Starts `controller/main.ts <command>` as the image would run it, with tsx loaded in-process
 * (`node --import tsx`) rather than through the tsx CLI. The CLI is a wrapper process that relays
 * signals to a child and SIGKILLs it (exiting 143) when the child does not acknowledge a signal
 * within ~60 ms, e.g. while its event loop is busy; with `--import` there is exactly one process,
 * and it alone decides how it shuts down.
 */
export function startRuntime(
  name: string,
  command: string,
  args: string[],
  logDir: string,
  env: NodeJS.ProcessEnv = {},
): ManagedProcess {
  return startProcess(
    name,
    process.execPath,
    ["--import", TSX_LOADER, path.join(REPO, "controller/main.ts"), command, ...args],
    {
      logDir,
      cwd: REPO,
      env: { ...process.env, KUBECONFIG: "", ...env },
    },
  );
}

export async function httpGet(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

export async function waitForHttp(what: string, url: string, proc: ManagedProcess): Promise<void> {
  await waitFor(
    what,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited:\n${tail(proc.logFile)}`);
      return (await httpGet(url)).status === 200;
    },
    { timeoutMs: 60_000, intervalMs: 200, describe: () => tail(proc.logFile) },
  );
}

/** GET with an explicit Host header (fetch does not let a caller set Host). */
export function httpGetWithHost(url: string, host: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "GET", headers: { host }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on("error", reject);
    req.end();
  });
}

export interface SellerRuntime {
  readonly gateway: ManagedProcess;
  readonly controller: ManagedProcess;
  /** The gateway's public origin (what the tunnel would expose). */
  readonly publicUrl: string;
  /** The gateway's internal port (route reports, /metrics). */
  readonly internalUrl: string;
  stop(): Promise<void>;
}

/** Waits for a PurchaseRequest's status spend counters to read `spentTotal` over `requests` calls. */
export function waitForSpend(
  cp: ControlPlane,
  ns: string,
  purchase: string,
  spentTotal: string,
  requests: number,
): Promise<void> {
  return waitFor(
    `PurchaseRequest ${purchase} spend counters`,
    async () => {
      const status = (await getObject(cp, ns, "purchaserequests", purchase))?.status as
        | { spentTotal?: string; requests?: number }
        | undefined;
      return status?.spentTotal === spentTotal && status.requests === requests;
    },
    { timeoutMs: 15_000 },
  );
}

/**
 * The seller side of the runtime as real processes against a namespace: the gateway (with the
 * x402 gate, verifying with `facilitatorUrl`) and the controller. Resolves once the gateway
 * answers; offers still have to reach Ready.
 */
export async function startSellerRuntime(opts: {
  cp: ControlPlane;
  namespace: string;
  logDir: string;
  /**
   * Default: a self-run facilitator of its own that advertises base-sepolia but settles nothing
   * (tests whose requests are never paid): the gateway only reads its /supported.
   */
  facilitatorUrl?: string;
  publicBaseUrl?: string;
  controllerArgs?: string[];
  gatewayEnv?: NodeJS.ProcessEnv;
}): Promise<SellerRuntime> {
  const ownFacilitator = opts.facilitatorUrl
    ? undefined
    : await startSupportedOnlyFacilitator({ logDir: opts.logDir, networks: [BASE_SEPOLIA] });
  const [port, internalPort, controllerPort] = [await freePort(), await freePort(), await freePort()];
  const internalUrl = `http://127.0.0.1:${internalPort}`;
  const gateway = startRuntime(
    "gateway",
    "gateway",
    [
      ...[
        "--kubeconfig",
        opts.cp.kubeconfigPath,
        "--namespace",
        opts.namespace,
        "--port",
        String(port),
        "--host",
        "127.0.0.1",
      ],
      ...(opts.publicBaseUrl ? ["--public-base-url", opts.publicBaseUrl] : []),
    ],
    opts.logDir,
    {
      INTERNAL_PORT: String(internalPort),
      INTERNAL_HOST: "127.0.0.1",
      FACILITATOR_URL: opts.facilitatorUrl ?? ownFacilitator?.url,
      ...opts.gatewayEnv,
    },
  );
  const controller = startRuntime(
    "controller",
    "controller",
    [
      ...[
        "--kubeconfig",
        opts.cp.kubeconfigPath,
        "--namespace",
        opts.namespace,
        "--gateway-internal-url",
        internalUrl,
      ],
      ...["--port", String(controllerPort), ...(opts.controllerArgs ?? ["--probe-interval-ms", "1000"])],
    ],
    opts.logDir,
  );
  await waitForHttp("the gateway", `${internalUrl}/healthz`, gateway);
  return {
    gateway,
    controller,
    publicUrl: `http://127.0.0.1:${port}`,
    internalUrl,
    async stop() {
      await Promise.all([gateway.stop(), controller.stop()]);
      await ownFacilitator?.proc.stop();
    },
  };
}

/**
 * The self-run facilitator advertising `networks` in /supported, with no chain behind it: for
 * tests whose requests are never paid (verify and settle would fail). A real process, so the
 * gateway reads a real facilitator's /supported.
 */
export async function startSupportedOnlyFacilitator(opts: {
  logDir: string;
  networks: readonly string[];
  port?: number;
}): Promise<{ proc: ManagedProcess; url: string; port: number }> {
  const port = opts.port ?? (await freePort());
  const proc = startRuntime("facilitator", "facilitator", [], opts.logDir, {
    // anvil's first well-known test key; nothing is ever signed with it here.
    SIGNER_KEY: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    RPC_URL: "http://127.0.0.1:9",
    NETWORKS: opts.networks.join(","),
    PORT: String(port),
    HOST: "127.0.0.1",
    BALANCE_REFRESH_MS: "3600000",
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp("the facilitator", `${url}/supported`, proc);
  return { proc, url, port };
}

/**
 * The self-run facilitator as a process on `port`, settling on `rpcUrl` with `signerKey`; with
 * `accessToken`, /verify and /settle answer only callers presenting it (as the stack runs it).
 */
export async function startFacilitatorProcess(opts: {
  logDir: string;
  rpcUrl: string;
  port: number;
  signerKey: string;
  accessToken?: string;
}): Promise<ManagedProcess> {
  const facilitator = startRuntime("facilitator", "facilitator", [], opts.logDir, {
    SIGNER_KEY: opts.signerKey,
    RPC_URL: opts.rpcUrl,
    PORT: String(opts.port),
    HOST: "127.0.0.1",
    ...(opts.accessToken ? { FACILITATOR_TOKEN: opts.accessToken } : {}),
  });
  await waitForHttp("the facilitator", `http://127.0.0.1:${opts.port}/supported`, facilitator);
  return facilitator;
}

/** The buyer proxy as a process watching `namespace`'s PurchaseRequests; resolves once it answers. */
export async function startBuyerProcess(opts: {
  cp: ControlPlane;
  namespace: string;
  logDir: string;
  signerKey: string;
  ledgerPath: string;
  /** How often it reads unconfirmed payments and channels on chain (its default: 30 s). */
  resolveEveryMs?: number;
  port?: number;
}): Promise<{ proc: ManagedProcess; url: string }> {
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const proc = startRuntime(
    "buyer",
    "buyer",
    [
      ...["--kubeconfig", opts.cp.kubeconfigPath, "--namespace", opts.namespace, "--port", String(port)],
      ...(opts.resolveEveryMs ? ["--resolve-interval-ms", String(opts.resolveEveryMs)] : []),
    ],
    opts.logDir,
    { SIGNER_KEY: opts.signerKey, LEDGER_PATH: opts.ledgerPath, HOST: "127.0.0.1" },
  );
  await waitForHttp("the buyer", `${url}/healthz`, proc);
  return { proc, url };
}

/**
 * A seller paid through channels, as real processes: the self-run facilitator on `rpcUrl`, the
 * seller's controller and gateway (channel state in `stateDir`), and a Ready offer "api" at
 * `/services/api` accepting exact and batch-settlement, already routed (402) when this resolves.
 */
export async function startChannelSeller(opts: {
  cp: ControlPlane;
  namespace: string;
  logDir: string;
  rpcUrl: string;
  facilitatorKey: string;
  stateDir: string;
  offer: Omit<PaidOfferArgs, "path" | "extra" | "logs" | "routedAt"> & {
    channels: { claimIntervalSeconds: number; refundIdleSeconds: number };
  };
}): Promise<{ facilitator: ManagedProcess; seller: SellerRuntime; endpoint: string }> {
  const facilitatorPort = await freePort();
  const facilitator = await startFacilitatorProcess({
    logDir: opts.logDir,
    rpcUrl: opts.rpcUrl,
    port: facilitatorPort,
    signerKey: opts.facilitatorKey,
  });
  const seller = await startSellerRuntime({
    cp: opts.cp,
    namespace: opts.namespace,
    logDir: opts.logDir,
    facilitatorUrl: `http://127.0.0.1:${facilitatorPort}`,
    gatewayEnv: { CHANNEL_STATE_DIR: opts.stateDir },
  });
  const { channels, ...offer } = opts.offer;
  await createPaidOffer(opts.cp, opts.namespace, "api", {
    ...offer,
    path: "/services/api",
    extra: { schemes: ["exact", "batch-settlement"], channels },
    logs: [seller.controller, seller.gateway],
    routedAt: [seller.publicUrl],
  });
  return { facilitator, seller, endpoint: `${seller.publicUrl}/services/api` };
}
