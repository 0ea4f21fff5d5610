/**
 * Several compose files into one project, later files overriding earlier ones as the docker CLI
 * merges them: a secret definition is replaced whole; in a service, scalars and commands are
 * replaced, `environment` and labels merge by key, `secrets` merge by source, `deploy` field by
 * field. Then the checks that need the whole project: every service has an image and a command,
 * and every secret it uses is defined.
 */
import { SecretdError } from '../../errors.ts';
import type { PartialProject, PartialService } from './load.ts';
import type {
  ComposeProject,
  DeployDefinition,
  SecretDefinition,
  SecretUse,
  ServiceDefinition,
} from './model.ts';

export function mergeProjects(
  names: readonly string[],
  parts: readonly PartialProject[],
): ComposeProject {
  const secrets = new Map<string, SecretDefinition>();
  const merged = new Map<string, PartialService>();
  for (const part of parts) {
    for (const [key, secret] of part.secrets) secrets.set(key, secret);
    for (const [key, service] of part.services)
      merged.set(key, mergeService(merged.get(key), service));
  }
  const where = `Invalid compose file ${names.join(', ')}`;
  const services = new Map<string, ServiceDefinition>();
  for (const [key, service] of [...merged].sort(([a], [b]) => a.localeCompare(b))) {
    const fail = (message: string): never => {
      throw new SecretdError('invalid', `${where}: service ${key}: ${message}`);
    };
    if (!service.image) fail('image is required');
    if ((service.command?.length ?? 0) + (service.entrypoint?.length ?? 0) === 0)
      fail('command (or entrypoint) is required: secretd images have no default command');
    for (const use of service.secrets ?? [])
      if (!secrets.has(use.source)) fail(`undefined secret ${JSON.stringify(use.source)}`);
    const deploy = service.deploy ?? {};
    if (deploy.mode === 'global' && deploy.replicas !== undefined)
      fail('replicas can only be used with replicated mode');
    services.set(key, {
      image: service.image!,
      ...(service.command === undefined ? {} : { command: service.command }),
      ...(service.entrypoint === undefined ? {} : { entrypoint: service.entrypoint }),
      environment: service.environment ?? {},
      secrets: service.secrets ?? [],
      deploy: { ...deploy, labels: deploy.labels ?? {} } as DeployDefinition,
    });
  }
  return { files: names, services, secrets };
}

function mergeService(base: PartialService | undefined, over: PartialService): PartialService {
  if (base === undefined) return over;
  const bySource = new Map<string, SecretUse>();
  for (const use of [...(base.secrets ?? []), ...(over.secrets ?? [])])
    bySource.set(use.source, use);
  const deploy =
    base.deploy || over.deploy
      ? {
          ...base.deploy,
          ...over.deploy,
          labels: { ...base.deploy?.labels, ...over.deploy?.labels },
        }
      : undefined;
  return {
    ...base,
    ...over,
    ...(base.environment || over.environment
      ? { environment: { ...base.environment, ...over.environment } }
      : {}),
    ...(base.secrets || over.secrets ? { secrets: [...bySource.values()] } : {}),
    ...(deploy ? { deploy } : {}),
  };
}
