// Agent install snippets beyond Docker and Kubernetes (install.ts): a plain executable under systemd, an
// ECS daemon task, and the node scripts of Databricks (cluster init script) and EMR (bootstrap action).
// Every one runs the agent with --server-host and --api-server set to this server (--api-server defaults
// to the vendor's SaaS, which would receive the agent's logs and token), the token and the service name.

import { shq } from './install';

/** AGENT_URL is where the agent's executable is released, per machine architecture (x86_64, aarch64). */
export const AGENT_URL = 'https://github.com/intel/gprofiler/releases/latest/download/gprofiler_$(uname -m)';

/** agentArgs are the agent's arguments (each a separate word, unquoted). */
export function agentArgs(token: string, service: string, origin: string, noVerify: boolean): string[] {
  return ['-cu', `--token=${token}`, `--service-name=${service}`, '--server-host', origin, '--api-server', origin]
    .concat(noVerify ? ['--no-verify'] : []);
}

/** envQuote quotes a value for a systemd EnvironmentFile: double quotes, in which a backslash makes the
 * next of \ " ` $ literal (systemd's rule, the shell's too). An <input> holds no newline. */
function envQuote(s: string): string {
  return '"' + s.replace(/[\\"`$]/g, '\\$&') + '"';
}

/**
 * systemdInstall installs the executable and a unit. The token and the service name go to a root-only
 * environment file (systemd expands "${VAR}" in ExecStart to exactly one argument, whatever it holds),
 * so the unit file itself carries no secret and no quoting of user text.
 */
export function systemdInstall(token: string, service: string, origin: string, noVerify: boolean): string {
  return [
    `wget -q ${AGENT_URL} -O gprofiler`,
    'sudo install -m 0755 gprofiler /usr/local/bin/gprofiler',
    'sudo install -m 0600 /dev/null /etc/gprofiler.env',
    "sudo tee /etc/gprofiler.env > /dev/null <<'END'",
    `GPROFILER_TOKEN=${envQuote(token)}`,
    `GPROFILER_SERVICE=${envQuote(service)}`,
    'END',
    "sudo tee /etc/systemd/system/gprofiler.service > /dev/null <<'END'",
    '[Unit]',
    'Description=gProfiler agent (sends profiles to Flamestream)',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'EnvironmentFile=/etc/gprofiler.env',
    'ExecStart=/usr/local/bin/gprofiler -cu --token=${GPROFILER_TOKEN} --service-name=${GPROFILER_SERVICE} ' +
      `--server-host ${origin} --api-server ${origin}${noVerify ? ' --no-verify' : ''}`,
    'Restart=on-failure',
    'RestartSec=10',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    'END',
    'sudo systemctl daemon-reload',
    'sudo systemctl enable --now gprofiler',
  ].join('\n');
}

/** ecsTaskDefinition is a task definition running the agent's container privileged in the host's PID namespace. */
export function ecsTaskDefinition(token: string, service: string, origin: string, noVerify: boolean): string {
  return JSON.stringify({
    family: 'granulate-gprofiler',
    pidMode: 'host',
    networkMode: 'host',
    requiresCompatibilities: ['EC2'],
    containerDefinitions: [{
      name: 'granulate-gprofiler',
      image: 'granulate/gprofiler:latest',
      essential: true,
      privileged: true,
      memory: 1024,
      cpu: 512,
      command: agentArgs(token, service, origin, noVerify),
    }],
  }, null, 2);
}

/** ECS_COMMANDS register the task definition and run it once on every container instance of a cluster. */
export const ECS_COMMANDS = [
  'aws ecs register-task-definition --cli-input-json file://gprofiler-task.json',
  'aws ecs create-service --cluster <CLUSTER> --service-name granulate-gprofiler \\',
  '  --task-definition granulate-gprofiler --scheduling-strategy DAEMON --launch-type EC2',
].join('\n');

/** nodeScript downloads the executable and starts it in the background on a node (Databricks, EMR). */
export function nodeScript(token: string, service: string, origin: string, noVerify: boolean, what: string): string {
  return [
    '#!/bin/bash',
    `# ${what}: runs gProfiler on every node of the cluster.`,
    'set -euo pipefail',
    `wget -q ${AGENT_URL} -O /tmp/gprofiler`,
    'sudo chmod +x /tmp/gprofiler',
    `sudo setsid nohup /tmp/gprofiler ${agentArgs(token, service, origin, noVerify).map(shq).join(' ')} > /tmp/gprofiler.log 2>&1 &`,
  ].join('\n');
}

/** EMR_COMMANDS upload the bootstrap script and name it as a bootstrap action of a new cluster. */
export const EMR_COMMANDS = [
  'aws s3 cp gprofiler-bootstrap.sh s3://<BUCKET>/gprofiler-bootstrap.sh',
  'aws emr create-cluster <YOUR CLUSTER OPTIONS> \\',
  '  --bootstrap-actions Path=s3://<BUCKET>/gprofiler-bootstrap.sh,Name=gprofiler',
].join('\n');
