import { h, replace, copyButton, errorBox, fmtAgo } from '../dom';
import { get, request, Agent } from '../api';
import { Page, setParams } from '../router';
import { debug } from '../debug';
import { freshTokens } from './tokens';
import { systemdInstall, ecsTaskDefinition, ECS_COMMANDS, nodeScript, EMR_COMMANDS } from './installsnippets';

const SAFE = /^[A-Za-z0-9._:/@%+=,-]+$/;

/** shq quotes a shell word when needed. */
export function shq(s: string): string {
  return SAFE.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * dockerCommand is the agent's docker run line. --api-server points at this
 * server as well as --server-host: the agent sends its own logs and metrics,
 * with the token, to --api-server, whose default is the vendor's SaaS.
 */
export function dockerCommand(token: string, service: string, origin: string, noVerify: boolean): string {
  return 'docker run --name granulate-gprofiler -d --restart=on-failure:10 --pid=host --userns=host --privileged ' +
    `granulate/gprofiler:latest -cu --token=${shq(token)} --service-name=${shq(service)} --server-host ${shq(origin)} --api-server ${shq(origin)}` +
    (noVerify ? ' --no-verify' : '');
}

/** k8sManifest is a Secret plus a DaemonSet running the agent on every node (--api-server as in dockerCommand). */
export function k8sManifest(token: string, service: string, origin: string, noVerify: boolean, namespace: string): string {
  const y = (s: string) => JSON.stringify(s);
  return `apiVersion: v1
kind: Secret
metadata:
  name: gprofiler-token
  namespace: ${y(namespace)}
type: Opaque
stringData:
  token: ${y(token)}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: granulate-gprofiler
  namespace: ${y(namespace)}
  labels:
    app: granulate-gprofiler
spec:
  selector:
    matchLabels:
      app: granulate-gprofiler
  template:
    metadata:
      labels:
        app: granulate-gprofiler
    spec:
      hostPID: true
      tolerations:
        - operator: Exists
      containers:
        - name: gprofiler
          image: granulate/gprofiler:latest
          imagePullPolicy: Always
          args:
            - -cu
            - --token=$(GPROFILER_TOKEN)
            - --service-name=${y(service).slice(1, -1)}
            - --server-host
            - ${y(origin)}
            - --api-server
            - ${y(origin)}${noVerify ? '\n            - --no-verify' : ''}
          env:
            - name: GPROFILER_TOKEN
              valueFrom:
                secretKeyRef:
                  name: gprofiler-token
                  key: token
            - name: GPROFILER_IN_K8S
              value: "1"
          securityContext:
            privileged: true
          resources:
            requests:
              cpu: 100m
              memory: 256Mi
            limits:
              cpu: 500m
              memory: 1Gi
`;
}

/** installPage shows agent install snippets filled with this server's origin and a chosen token. */
export function installPage(url: URL): Page {
  let q = url.searchParams;
  const origin = window.location.origin;
  let poll = 0;
  const tokenIn = h('input', { class: 'mono', placeholder: 'paste a token or create one', 'aria-label': 'token', value: freshTokens[0]?.token || '' });
  const serviceIn = h('input', { class: 'mono', placeholder: 'my-service', 'aria-label': 'service name', value: q.get('service') || '' });
  const nsIn = h('input', { class: 'mono', 'aria-label': 'namespace', value: 'default' });
  const noVerify = h('input', { type: 'checkbox', checked: q.get('no_verify') === '1' });
  const picks = freshTokens.length ? h('select', {
    'aria-label': 'recent tokens',
    onchange: (e: Event) => { tokenIn.value = (e.target as HTMLSelectElement).value; render(); },
  }, freshTokens.map((t) => h('option', { value: t.token }, `${t.name}${t.service ? ' (' + t.service + ')' : ''}`))) : null;
  const err = h('div');
  const docker = h('pre', { class: 'snippet', dataset: { snippet: 'docker' } });
  const k8s = h('pre', { class: 'snippet', dataset: { snippet: 'k8s' } });
  const systemd = h('pre', { class: 'snippet', dataset: { snippet: 'systemd' } });
  const ecs = h('pre', { class: 'snippet', dataset: { snippet: 'ecs' } });
  const databricks = h('pre', { class: 'snippet', dataset: { snippet: 'databricks' } });
  const emr = h('pre', { class: 'snippet', dataset: { snippet: 'emr' } });
  const snippet = (pre: HTMLElement) => h('div', { class: 'snippet-wrap' }, pre, copyButton(() => pre.textContent || ''));
  const arrival = h('div', { class: 'arrival muted' });
  const createBtn = h('button', {
    type: 'button', class: 'btn small', onclick: async () => {
      replace(err);
      try {
        const svc = serviceIn.value.trim();
        const r = await request<{ id: string | number; token: string }>('POST', '/tokens', { body: { service: svc, name: `agents ${svc || 'all services'}` } });
        freshTokens.unshift({ id: String(r.id), name: `agents ${svc}`, service: svc, token: r.token });
        tokenIn.value = r.token;
        render();
      } catch (ex) { replace(err, errorBox(ex)); }
    },
  }, 'Create a token');

  function values() {
    return {
      token: tokenIn.value.trim() || '<TOKEN>',
      service: serviceIn.value.trim() || '<SERVICE>',
      nv: noVerify.checked,
    };
  }

  function render(): void {
    const v = values();
    docker.textContent = dockerCommand(v.token, v.service, origin, v.nv);
    k8s.textContent = k8sManifest(v.token, v.service, origin, v.nv, nsIn.value.trim() || 'default');
    systemd.textContent = systemdInstall(v.token, v.service, origin, v.nv);
    ecs.textContent = ecsTaskDefinition(v.token, v.service, origin, v.nv);
    databricks.textContent = nodeScript(v.token, v.service, origin, v.nv, 'Databricks cluster init script');
    emr.textContent = nodeScript(v.token, v.service, origin, v.nv, 'EMR bootstrap action');
  }

  async function checkArrival(): Promise<void> {
    const svc = serviceIn.value.trim();
    if (!svc) { arrival.textContent = 'Enter a service name to watch for its first agent.'; return; }
    try {
      const r = await get<{ agents: Agent[] }>('/agents', { service: svc });
      const a = r.agents || [];
      arrival.textContent = a.length
        ? `✔ ${a.length} agent${a.length > 1 ? 's' : ''} reporting for ${svc} (last seen ${fmtAgo(a.map((x) => x.last_seen).sort().pop() || '')}).`
        : `Waiting for the first agent of ${svc}…`;
    } catch { arrival.textContent = ''; }
  }

  for (const i of [tokenIn, nsIn]) i.addEventListener('input', render);
  serviceIn.addEventListener('input', () => { render(); });
  serviceIn.addEventListener('change', () => { setParams({ service: serviceIn.value.trim() || null }, { replace: true }); void checkArrival(); });
  noVerify.addEventListener('change', () => { render(); setParams({ no_verify: noVerify.checked ? '1' : null }, { replace: true }); });
  render();
  void checkArrival();
  poll = window.setInterval(checkArrival, 10000);
  debug.ready = true;

  return {
    el: h('div', { class: 'page admin install' },
      h('h2', null, 'Install the agent'),
      h('ol', { class: 'steps' },
        h('li', null, 'Pick a token and name the service the hosts belong to.',
          h('div', { class: 'card form-grid' },
            h('label', null, 'Token', h('span', { class: 'row' }, tokenIn, picks, createBtn)),
            h('label', null, 'Service name', serviceIn),
            h('label', { class: 'check' }, noVerify, ' --no-verify (self-signed TLS certificate)'),
            h('div', { class: 'muted' }, 'Server: ', h('code', null, origin))), err),
        h('li', null, h('b', null, 'Docker'), ' — run on each host:',
          h('div', { class: 'snippet-wrap' }, docker, copyButton(() => docker.textContent || ''))),
        h('li', null, h('b', null, 'Kubernetes'), ' — a DaemonSet on every node (namespace ', nsIn, '):',
          h('div', { class: 'snippet-wrap' }, k8s, copyButton(() => k8s.textContent || ''))),
        h('li', null, h('b', null, 'Executable with systemd'), ' — on each host (x86_64 or aarch64), as a user with sudo:', snippet(systemd)),
        h('li', null, h('b', null, 'Amazon ECS'), ' — save this task definition as ', h('code', null, 'gprofiler-task.json'), ' and run it as a daemon service on the cluster\'s EC2 instances:',
          snippet(ecs), snippet(h('pre', { class: 'snippet', dataset: { snippet: 'ecs-commands' } }, ECS_COMMANDS))),
        h('li', null, h('b', null, 'Databricks'), ' — add this as a cluster-scoped init script (Compute → the cluster → Advanced options → Init scripts):', snippet(databricks)),
        h('li', null, h('b', null, 'Amazon EMR'), ' — save this as ', h('code', null, 'gprofiler-bootstrap.sh'), ' and name it as a bootstrap action:',
          snippet(emr), snippet(h('pre', { class: 'snippet', dataset: { snippet: 'emr-commands' } }, EMR_COMMANDS))),
        h('li', null, 'Wait for data:', arrival))),
    update(u) { q = u.searchParams; },
    destroy() { clearInterval(poll); },
  };
}
