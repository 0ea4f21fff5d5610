/**
 * What the console asks the cluster, through the CLI's own client (the admin socket, or a manager
 * over mutual TLS with a client certificate: the console has exactly that certificate's role). Each
 * view's data is a few of the API's reads put together; each change is the API call the CLI makes,
 * so it gets the same rules and the same errors. Nothing here reads or returns a secret's value: the
 * API never gives one, and a value the page posts is passed on once and not kept.
 */
import { SecretdError, codeForHttpStatus } from '../errors.ts';
import { consoleAuditRecordsMax } from '../limits.ts';

/** The CLI's ApiClient, as far as the console uses it (src/cmd/client.ts hands it in). */
export interface ClusterClient {
  request(
    method: string,
    path: string,
    body?: unknown,
    onData?: (chunk: Buffer) => void,
  ): Promise<{ readonly status: number; readonly body: unknown }>;
  close(): void;
}

/** The CLI's `--secret` parser (src/cmd/_secret-spec.ts): the same forms and errors in the console. */
export type SecretSpecParser = (spec: string) => { readonly File: { readonly Name: string } };

export interface Whoami {
  readonly Role: string;
  readonly Name: string;
  readonly Scope: readonly string[];
  readonly Allowed: readonly string[];
}

const q = encodeURIComponent;

export class Cluster {
  constructor(
    readonly client: ClusterClient,
    readonly parseSecretSpec: SecretSpecParser,
  ) {}

  /** Calls the API; a non-2xx answer becomes a SecretdError with the cluster's own message. */
  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const answer = await this.client.request(method, path, body);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    const message =
      typeof answer.body === 'object' && answer.body !== null && 'message' in answer.body
        ? String((answer.body as { message: unknown }).message)
        : `HTTP ${answer.status}`;
    throw new SecretdError(codeForHttpStatus(answer.status), message);
  }

  whoami(): Promise<Whoami> {
    return this.call('GET', '/secretd/whoami') as Promise<Whoami>;
  }

  /** Reads what the role may read; a read it may not make is left out (null), not an error. */
  async #maybe(allowed: readonly string[], key: string, path: string): Promise<unknown> {
    return allowed.includes(key) ? this.call('GET', path) : null;
  }

  async cluster(allowed: readonly string[]): Promise<object> {
    const [nodes, raft, rotation, states] = await Promise.all([
      this.#maybe(allowed, 'GET /nodes', '/nodes'),
      this.#maybe(allowed, 'GET /secretd/raft/status', '/secretd/raft/status'),
      this.#maybe(allowed, 'GET /secretd/ca/rotation', '/secretd/ca/rotation').catch(() => null),
      // Certificate ends and locked managers (the leader's view): left out while there is no leader.
      this.#maybe(allowed, 'GET /secretd/nodes/state', '/secretd/nodes/state').catch(() => null),
    ]);
    return { nodes, raft, rotation, states };
  }

  /** Secrets, services, tasks and nodes: what the secrets list, a secret's page, services and the graph draw. */
  async workload(allowed: readonly string[]): Promise<object> {
    const [secrets, services, tasks, nodes] = await Promise.all([
      this.#maybe(allowed, 'GET /secrets', '/secrets'),
      this.#maybe(allowed, 'GET /services', '/services'),
      this.#maybe(allowed, 'GET /tasks', '/tasks'),
      this.#maybe(allowed, 'GET /nodes', '/nodes'),
    ]);
    return { secrets, services, tasks, nodes };
  }

  /**
   * The workload, each secret's newest version and who holds it now (the leader's dispatcher: tasks
   * and grants; null when the role may not read it or there is no leader). Two reads per secret:
   * for the pages, not the poll.
   */
  async workloadWithVersions(allowed: readonly string[]): Promise<object> {
    const workload = (await this.workload(allowed)) as { secrets: unknown };
    const secrets = (workload.secrets ?? []) as Array<{ ID: string }>;
    const newest: Record<string, number> = {};
    const holders: Record<string, unknown> = {};
    await Promise.all(
      secrets.map(async (secret) => {
        const [listed, held] = await Promise.all([
          this.call('GET', `/secretd/secrets/${q(secret.ID)}/versions`).catch(() => null),
          this.#holders(allowed, secret.ID),
        ]);
        const last = (listed as { Versions?: Array<{ Version: number }> } | null)?.Versions?.at(-1);
        if (last) newest[secret.ID] = last.Version;
        if (held !== null) holders[secret.ID] = held;
      }),
    );
    return { ...workload, newest, holders };
  }

  /** Who holds a secret now (GET /secretd/secrets/{id}/holders), or null when it cannot be read. */
  #holders(allowed: readonly string[], ref: string): Promise<unknown> {
    return this.#maybe(
      allowed,
      'GET /secretd/secrets/:id/holders',
      `/secretd/secrets/${q(ref)}/holders`,
    ).catch(() => null);
  }

  async secret(allowed: readonly string[], ref: string): Promise<object> {
    const [secret, versions, workload, grants, holders] = await Promise.all([
      this.call('GET', `/secrets/${q(ref)}`),
      this.call('GET', `/secretd/secrets/${q(ref)}/versions`),
      this.workload(allowed),
      this.#maybe(allowed, 'GET /secretd/secrets/:id/grants', `/secretd/secrets/${q(ref)}/grants`),
      this.#holders(allowed, ref),
    ]);
    const name = (secret as { Spec?: { Name?: string } }).Spec?.Name ?? ref;
    const audit = allowed.includes('GET /secretd/audit')
      ? await this.audit({ secret: name })
      : null;
    return { secret, versions, audit, grants, holders, ...workload };
  }

  /**
   * The newest records (at most consoleAuditRecordsMax) that match `filters`, as parsed objects:
   * read as the cluster streams them, keeping only the newest, so a long trail costs no more.
   */
  async audit(filters: Readonly<Record<string, string>>): Promise<object[]> {
    const params = new URLSearchParams();
    for (const key of ['since', 'until', 'actor', 'secret', 'node', 'action'])
      if (filters[key]) params.set(key, filters[key]!);
    const kept: string[] = [];
    let partial = '';
    const answer = await this.client.request(
      'GET',
      `/secretd/audit${params.size > 0 ? `?${params}` : ''}`,
      undefined,
      (chunk) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (line !== '') kept.push(line);
        if (kept.length > 2 * consoleAuditRecordsMax)
          kept.splice(0, kept.length - consoleAuditRecordsMax);
      },
    );
    if (answer.status < 200 || answer.status >= 300) {
      const body = answer.body as { message?: unknown } | null;
      throw new SecretdError(
        codeForHttpStatus(answer.status),
        typeof body?.message === 'string' ? body.message : `HTTP ${answer.status}`,
      );
    }
    if (partial !== '') kept.push(partial);
    return kept.slice(-consoleAuditRecordsMax).map((line) => JSON.parse(line) as object);
  }

  verifyAudit(): Promise<unknown> {
    return this.call('GET', '/secretd/audit/verify');
  }

  // Changes: each the CLI's call.

  createSecret(body: { Name: string; Labels: Record<string, string>; Data: string }) {
    return this.call('POST', '/secrets/create', body);
  }

  addVersion(ref: string, body: { Data: string; IfVersion?: number }) {
    return this.call('POST', `/secretd/secrets/${q(ref)}/versions`, body);
  }

  rollback(ref: string, body: { To: number; IfVersion?: number }) {
    return this.call('POST', `/secretd/secrets/${q(ref)}/rollback`, body);
  }

  removeVersion(ref: string, version: number) {
    return this.call('DELETE', `/secretd/secrets/${q(ref)}/versions/${version}`);
  }

  removeSecret(ref: string) {
    return this.call('DELETE', `/secrets/${q(ref)}`);
  }

  /** `secret grant REF --node-constraint EXPR… [--version N]`: the CLI's call and its line. */
  async grant(ref: string, constraints: readonly string[], version: number | null) {
    requiredConstraints(constraints, 'grant');
    const answer = (await this.call('POST', `/secretd/secrets/${q(ref)}/grants`, {
      Constraints: constraints,
      ...(version === null ? {} : { Version: version }),
    })) as GrantsJSON;
    const which = version === null ? 'the newest version' : `version ${version}`;
    return {
      ...answer,
      Message: `${answer.Name}: granted to nodes where ${constraints.join(' and ')} (${which})`,
    };
  }

  /** `secret ungrant REF --node-constraint EXPR…`: the CLI's call and its line. */
  async ungrant(ref: string, constraints: readonly string[]) {
    requiredConstraints(constraints, 'ungrant');
    const query = constraints.map((c) => `constraint=${q(c)}`).join('&');
    const answer = (await this.call(
      'DELETE',
      `/secretd/secrets/${q(ref)}/grants?${query}`,
    )) as GrantsJSON;
    return { ...answer, Message: `${answer.Name}: grant removed (${answer.Grants.length} left)` };
  }

  /** `service scale NAME=N` and `service update --secret-add/--secret-rm`, as the CLI builds them. */
  async updateService(
    ref: string,
    change: { replicas?: number; secretAdd?: string; secretRm?: string },
  ): Promise<unknown> {
    const service = (await this.call('GET', `/services/${q(ref)}`)) as ServiceJSON;
    const spec = structuredClone(service.Spec);
    if (change.replicas !== undefined) {
      if (spec.Mode.Global)
        throw new SecretdError(
          'invalid',
          `${spec.Name}: scale can only be used with replicated services`,
        );
      spec.Mode = { Replicated: { Replicas: change.replicas } };
    }
    const container = spec.TaskTemplate.ContainerSpec;
    let secrets = container.Secrets ?? [];
    if (change.secretRm !== undefined)
      secrets = secrets.filter((s) => s.SecretName !== change.secretRm);
    if (change.secretAdd !== undefined) {
      const added = this.parseSecretSpec(change.secretAdd);
      secrets = [...secrets.filter((s) => s.File.Name !== added.File.Name), added as SecretRef];
    }
    // References the server resolved carry their SecretID; new ones go by name alone.
    container.Secrets = secrets.map((s) =>
      s.SecretID
        ? s
        : { SecretName: s.SecretName, File: s.File, ...(s.Secretd ? { Secretd: s.Secretd } : {}) },
    );
    return this.call(
      'POST',
      `/services/${service.ID}/update?version=${service.Version.Index}`,
      spec,
    );
  }
}

interface GrantsJSON {
  readonly ID: string;
  readonly Name: string;
  readonly Grants: ReadonlyArray<{
    readonly Constraints: string[];
    readonly Version: number | null;
  }>;
}

/** The CLI's refusal of a grant or ungrant without constraints (src/cmd/secret.ts), word for word. */
function requiredConstraints(constraints: readonly string[], command: string): void {
  if (constraints.length === 0)
    throw new SecretdError(
      'invalid',
      `Missing --node-constraint: say which nodes the ${command} is for (e.g. --node-constraint node.labels.role==db)`,
    );
}

interface SecretRef {
  SecretID?: string;
  SecretName: string;
  File: { Name: string };
  Secretd?: object;
}

interface ServiceJSON {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Mode: { Replicated?: { Replicas: number }; Global?: object };
    TaskTemplate: { ContainerSpec: { Secrets?: SecretRef[] } };
  };
}
