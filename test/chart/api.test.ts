// The chart's run API: the Service every replica serves, its certificate in each TLS mode, the webhooks'
// secrets as secretKeyRefs, the trigger role, and the operator's TokenReview/SubjectAccessReview grant.
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { find, parseManifests, renderChart, type K8sObject } from './helm.ts';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
type Deployment = K8sObject & {
  spec: {
    template: {
      spec: {
        containers: Array<{
          env: EnvVar[];
          ports: Array<{ name: string; containerPort: number }>;
          volumeMounts: Array<{ name: string; mountPath: string }>;
        }>;
        volumes: Array<{ name: string; secret?: { secretName: string } }>;
      };
    };
  };
};
type Rules = K8sObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> };

const container = (objects: K8sObject[]) =>
  (find(objects, 'Deployment') as Deployment).spec.template.spec.containers[0]!;
const env = (objects: K8sObject[]) =>
  Object.fromEntries(container(objects).env.map((e) => [e.name, e.value ?? e.valueFrom]));

describe('the run API in the chart', () => {
  it('serves the API on a port of its own behind a Service, with a self-signed certificate for that Service', async () => {
    const objects = parseManifests(await renderChart());
    const service = find(objects, 'Service', 'syncline-api') as K8sObject & {
      spec: { ports: Array<{ name: string; port: number; targetPort: string }> };
    };
    expect(service.spec.ports).toEqual([
      { name: 'https-api', port: 443, targetPort: 'api', protocol: 'TCP' },
    ]);
    expect(container(objects).ports).toContainEqual(
      expect.objectContaining({ name: 'api', containerPort: 8443 }),
    );
    expect(env(objects)).toMatchObject({
      SYNCLINE_API_PORT: '8443',
      SYNCLINE_API_TLS_CERT_FILE: '/etc/syncline/api-tls/tls.crt',
      SYNCLINE_API_TLS_KEY_FILE: '/etc/syncline/api-tls/tls.key',
    });
    const secret = find(objects, 'Secret', 'syncline-api-tls') as K8sObject & {
      data: Record<string, string>;
    };
    expect(secret.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    const cert = new X509Certificate(Buffer.from(secret.data['tls.crt']!, 'base64'));
    const ca = new X509Certificate(Buffer.from(secret.data['ca.crt']!, 'base64'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subjectAltName).toContain('DNS:syncline-api.syncline-system.svc');
    expect(container(objects).volumeMounts).toContainEqual(
      expect.objectContaining({ name: 'api-tls', mountPath: '/etc/syncline/api-tls' }),
    );
  });

  it('asks cert-manager for the certificate, or mounts a given Secret, or serves plain HTTP when told', async () => {
    const managed = parseManifests(
      await renderChart({
        api: { tls: { mode: 'certManager', certManager: { issuerRef: { name: 'internal-ca' } } } },
      }),
    );
    const certificate = find(managed, 'Certificate') as K8sObject & {
      spec: { secretName: string; dnsNames: string[]; issuerRef: { name: string } };
    };
    expect(certificate.spec).toMatchObject({
      secretName: 'syncline-api-tls',
      issuerRef: { name: 'internal-ca', kind: 'ClusterIssuer' },
    });
    expect(certificate.spec.dnsNames).toContain('syncline-api.syncline-system.svc.cluster.local');
    expect(managed.some((o) => o.kind === 'Secret')).toBe(false);

    const own = parseManifests(
      await renderChart({ api: { tls: { mode: 'secret', secretName: 'my-api-cert' } } }),
    );
    expect((find(own, 'Deployment') as Deployment).spec.template.spec.volumes).toContainEqual(
      expect.objectContaining({
        name: 'api-tls',
        secret: expect.objectContaining({ secretName: 'my-api-cert' }),
      }),
    );

    const plain = parseManifests(await renderChart({ api: { tls: { mode: 'none' } } }));
    expect(env(plain)['SYNCLINE_API_TLS_CERT_FILE']).toBeUndefined();
    expect(
      (find(plain, 'Service', 'syncline-api') as K8sObject & { spec: { ports: Array<{ name: string }> } })
        .spec.ports[0]!.name,
    ).toBe('http-api');

    const off = parseManifests(await renderChart({ api: { enabled: false } }));
    expect(env(off)['SYNCLINE_API_DISABLED']).toBe('true');
    expect(off.some((o) => o.metadata.name === 'syncline-api')).toBe(false);
  });

  it('passes each webhook and its signing secret as a secretKeyRef, never as a value', async () => {
    const objects = parseManifests(
      await renderChart({
        api: {
          webhooks: [
            { name: 'dbt-prod', type: 'dbtCloud', secretRef: { name: 'dbt-webhook', key: 'secret' } },
            { name: 'fivetran', type: 'fivetran', secretRef: { name: 'fivetran-webhook', key: 'secret' } },
          ],
        },
      }),
    );
    expect(env(objects)).toMatchObject({
      SYNCLINE_WEBHOOKS: 'dbt-prod=dbtCloud,fivetran=fivetran',
      SYNCLINE_WEBHOOK_SECRET_DBT_PROD: { secretKeyRef: { name: 'dbt-webhook', key: 'secret' } },
      SYNCLINE_WEBHOOK_SECRET_FIVETRAN: { secretKeyRef: { name: 'fivetran-webhook', key: 'secret' } },
    });
  });

  it('ships a trigger role aggregated to edit and admin, and grants the operator only the two reviews', async () => {
    const objects = parseManifests(await renderChart());
    const trigger = find(objects, 'ClusterRole', 'syncline-trigger') as Rules;
    expect(trigger.metadata.labels).toMatchObject({
      'rbac.authorization.k8s.io/aggregate-to-edit': 'true',
      'rbac.authorization.k8s.io/aggregate-to-admin': 'true',
    });
    expect(trigger.metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-view']).toBeUndefined();
    expect(trigger.rules).toEqual([
      { apiGroups: ['syncline.io'], resources: ['syncs'], verbs: ['get', 'list', 'trigger'] },
    ]);
    const auth = find(objects, 'ClusterRole', 'syncline-api-auth') as Rules;
    expect(auth.rules.flatMap((r) => r.verbs.map((v) => `${v} ${r.apiGroups[0]}/${r.resources[0]}`))).toEqual(
      ['create authentication.k8s.io/tokenreviews', 'create authorization.k8s.io/subjectaccessreviews'],
    );
    const ingress = parseManifests(
      await renderChart({
        api: { ingress: { enabled: true, host: 'syncline.example.com', className: 'nginx' } },
      }),
    );
    expect(
      find(ingress, 'Ingress').metadata.annotations?.['nginx.ingress.kubernetes.io/backend-protocol'],
    ).toBe('HTTPS');
  });
});
