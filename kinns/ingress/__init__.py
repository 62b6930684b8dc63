"""kinns' ingress controller: Ingress objects turned into a real nginx.

What `registry.k8s.io/ingress-nginx/controller` runs in the
`ingress-nginx-controller` pods (kinns/node/images.py), in the shape
upstream's ingress-nginx has: a controller process that watches the API
with its own credentials and owns an nginx master in the same container.

Division of labour:

- `routing` (pure): what the Ingress spec says.  Ingresses, Services,
  EndpointSlices and Secrets in, a `Plan` out: one server per host, its
  locations with the route that wins each, upstreams of endpoint
  addresses, the certificate each host serves, and the Events the user
  should see (missing Services and ports, conflicting paths, bad TLS
  Secrets).  `select` is the same semantics as a function of one request,
  the oracle the tests compare nginx with;
- `certs` (pure): a TLS Secret checked as a certificate and key that belong
  together, the names it covers; the controller's self-signed default;
- `nginxconf` (pure): a `Plan` rendered as nginx.conf text;
- `nginx`: files and the nginx master: write, `nginx -t`, swap in, SIGHUP;
- `controller`: informers, the sync loop, Events, the Ingresses' status,
  health; `__main__`: the flags ingress-nginx's binary takes.
"""
