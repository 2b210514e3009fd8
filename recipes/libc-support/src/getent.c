/*
 * getent: print entries of the system databases, for musl on Linux.
 *
 *   getent [-s CONFIG] [-i] [-A] DATABASE [KEY...]
 *
 * With no key, every entry is printed; with keys, the entries they name.
 * Output and exit codes follow glibc's getent, as observed:
 *   0 found, 1 bad arguments or unknown database, 2 a key not found,
 *   3 the database cannot be enumerated, 64 a bad option.
 *
 * passwd, group, shadow and initgroups go through musl (getpwnam(), getgrent(),
 * getspnam()...). musl cannot list shadow, hosts, services or networks, ignores
 * /etc/protocols (it has a table of its own) and keeps no aliases of services or
 * hosts: those files are read here, in the format glibc prints them, and musl
 * answers what they do not hold (DNS for hosts, its own protocol table when there
 * is no /etc/protocols). ahosts is musl's getaddrinfo().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define VERSION_TEXT "getent (serpentlib libc-support) 0.1"
#define TRY "Try `getent --help' or `getent --usage' for more information.\n"
#define MAXF 64 /* fields kept from one line of an /etc file */

static int addrconfig = 1; /* -A turns AI_ADDRCONFIG off for ahosts */

static const char *str(const char *s)
{
	return s ? s : "";
}

/* A decimal id such as a uid: digits, maybe a sign and blanks before, nothing after. */
static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!*s)
		return 0;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !*end && !errno && *out <= 0xffffffffUL && !strchr(s, '-');
}

/* Split an /etc line into blank-separated fields, dropping a # comment. */
static int split(char *line, char **f)
{
	int n = 0;
	char *p = strchr(line, '#');

	if (p)
		*p = 0;
	for (p = strtok(line, " \t\r\n"); p && n < MAXF - 1; p = strtok(NULL, " \t\r\n"))
		f[n++] = p;
	f[n] = NULL;
	return n;
}

/* ---- passwd, group, shadow, initgroups ---- */

static void print_pw(const struct passwd *p)
{
	printf("%s:%s:%lu:%lu:%s:%s:%s\n", str(p->pw_name), str(p->pw_passwd),
	       (unsigned long)p->pw_uid, (unsigned long)p->pw_gid, str(p->pw_gecos),
	       str(p->pw_dir), str(p->pw_shell));
}

static int db_passwd(int n, char **keys)
{
	struct passwd *p;
	unsigned long id;
	int i, rc = 0;

	if (!n) {
		setpwent();
		while ((p = getpwent()))
			print_pw(p);
		endpwent();
		return 0;
	}
	for (i = 0; i < n; i++) {
		p = parse_id(keys[i], &id) ? getpwuid((uid_t)id) : getpwnam(keys[i]);
		if (p)
			print_pw(p);
		else
			rc = 2;
	}
	return rc;
}

static void print_gr(const struct group *g)
{
	char **m;

	printf("%s:%s:%lu:", str(g->gr_name), str(g->gr_passwd), (unsigned long)g->gr_gid);
	for (m = g->gr_mem; m && *m; m++)
		printf("%s%s", m == g->gr_mem ? "" : ",", *m);
	putchar('\n');
}

static int db_group(int n, char **keys)
{
	struct group *g;
	unsigned long id;
	int i, rc = 0;

	if (!n) {
		setgrent();
		while ((g = getgrent()))
			print_gr(g);
		endgrent();
		return 0;
	}
	for (i = 0; i < n; i++) {
		g = parse_id(keys[i], &id) ? getgrgid((gid_t)id) : getgrnam(keys[i]);
		if (g)
			print_gr(g);
		else
			rc = 2;
	}
	return rc;
}

/* An empty field stands for -1. */
static void print_num(long v, int sep)
{
	if (v != -1)
		printf("%ld", v);
	if (sep)
		putchar(sep);
}

static void print_sp(const struct spwd *s)
{
	printf("%s:%s:", str(s->sp_namp), str(s->sp_pwdp));
	print_num(s->sp_lstchg, ':');
	print_num(s->sp_min, ':');
	print_num(s->sp_max, ':');
	print_num(s->sp_warn, ':');
	print_num(s->sp_inact, ':');
	print_num(s->sp_expire, ':');
	if (s->sp_flag != (unsigned long)-1)
		printf("%lu", (unsigned long)s->sp_flag);
	putchar('\n');
}

static int db_shadow(int n, char **keys)
{
	struct spwd *s;
	FILE *f;
	int i, rc = 0;

	if (!n) {
		/* musl's getspent() returns nothing: read the file. */
		if (!(f = fopen("/etc/shadow", "r")))
			return 0;
		while ((s = fgetspent(f)))
			print_sp(s);
		fclose(f);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if ((s = getspnam(keys[i])))
			print_sp(s);
		else
			rc = 2;
	}
	return rc;
}

/* The groups a user is a member of, as the group file lists them. */
static int db_initgroups(int n, char **keys)
{
	struct group *g;
	char **m;
	int i;

	for (i = 0; i < n; i++) {
		printf("%-21s", keys[i]);
		setgrent();
		while ((g = getgrent()))
			for (m = g->gr_mem; m && *m; m++)
				if (!strcmp(*m, keys[i])) {
					printf(" %lu", (unsigned long)g->gr_gid);
					break;
				}
		endgrent();
		putchar('\n');
	}
	return 0;
}

/* ---- hosts ---- */

struct addr {
	int af;
	unsigned char a[16];
};

static int parse_addr(const char *s, struct addr *a)
{
	if (inet_pton(AF_INET, s, a->a) == 1)
		a->af = AF_INET;
	else if (inet_pton(AF_INET6, s, a->a) == 1)
		a->af = AF_INET6;
	else
		return 0;
	return 1;
}

static int addr_len(int af)
{
	return af == AF_INET ? 4 : 16;
}

static void print_host(int af, const void *a, char **names)
{
	char buf[INET6_ADDRSTRLEN];

	inet_ntop(af, a, buf, sizeof buf);
	printf("%-15s", buf);
	for (; *names; names++)
		printf(" %s", *names);
	putchar('\n');
}

/* A hostent's names: the official one, then the aliases that differ from it. */
static void print_hostent(const struct hostent *h)
{
	char *names[MAXF];
	char **p, **a;
	int n = 0;

	names[n++] = h->h_name;
	for (a = h->h_aliases; a && *a && n < MAXF - 1; a++)
		if (strcmp(*a, h->h_name))
			names[n++] = *a;
	names[n] = NULL;
	for (p = h->h_addr_list; *p; p++)
		print_host(h->h_addrtype, *p, names);
}

static FILE *open_hosts(void)
{
	return fopen("/etc/hosts", "r");
}

static int hosts_enumerate(void)
{
	char line[1024], *f[MAXF];
	struct addr a;
	FILE *fp = open_hosts();

	if (!fp)
		return 0;
	while (fgets(line, sizeof line, fp))
		if (split(line, f) >= 2 && parse_addr(f[0], &a))
			print_host(a.af, a.a, f + 1);
	fclose(fp);
	return 0;
}

/* A name in /etc/hosts: every address of family af that has it, with the names of the first such line. */
static int hosts_file_name(const char *key, int af)
{
	char line[1024], raw[1024], keep[1024], *f[MAXF], *names[MAXF];
	struct addr a, found[64];
	int n = 0, i, k;
	FILE *fp = open_hosts();

	if (!fp)
		return 0;
	while (n < 64 && fgets(line, sizeof line, fp)) {
		strcpy(raw, line);
		k = split(line, f);
		if (k < 2 || !parse_addr(f[0], &a) || a.af != af)
			continue;
		for (i = 1; i < k && strcasecmp(f[i], key); i++)
			;
		if (i == k)
			continue;
		if (!n) {
			strcpy(keep, raw);
			split(keep, names); /* names[0] is the address */
		}
		found[n++] = a;
	}
	fclose(fp);
	for (i = 0; i < n; i++)
		print_host(found[i].af, found[i].a, names + 1);
	return n;
}

/* An address in /etc/hosts: its first line. */
static int hosts_file_addr(const struct addr *want)
{
	char line[1024], *f[MAXF];
	struct addr a;
	FILE *fp = open_hosts();

	if (!fp)
		return 0;
	while (fgets(line, sizeof line, fp)) {
		if (split(line, f) < 2 || !parse_addr(f[0], &a) || a.af != want->af
		    || memcmp(a.a, want->a, addr_len(a.af)))
			continue;
		fclose(fp);
		print_host(want->af, want->a, f + 1);
		return 1;
	}
	fclose(fp);
	return 0;
}

/* Not in the file: a reverse look-up by musl (DNS). Only a real name counts. */
static int hosts_reverse(const struct addr *a)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char name[NI_MAXHOST], *names[2];
	int r;

	if (a->af == AF_INET) {
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, a->a, 4);
		r = getnameinfo((struct sockaddr *)&sin, sizeof sin, name, sizeof name, NULL, 0, NI_NAMEREQD);
	} else {
		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, a->a, 16);
		r = getnameinfo((struct sockaddr *)&sin6, sizeof sin6, name, sizeof name, NULL, 0, NI_NAMEREQD);
	}
	if (r != 0)
		return 0;
	names[0] = name;
	names[1] = NULL;
	print_host(a->af, a->a, names);
	return 1;
}

static int hosts_key(const char *key)
{
	struct hostent *h;
	struct addr a;

	if (parse_addr(key, &a))
		return hosts_file_addr(&a) || hosts_reverse(&a);
	if (hosts_file_name(key, AF_INET6) || hosts_file_name(key, AF_INET))
		return 1;
	/* Not in the file: ask musl (DNS, or a numeric form such as 127.1). */
	h = gethostbyname2(key, AF_INET6);
	if (!h)
		h = gethostbyname2(key, AF_INET);
	if (!h)
		return 0;
	print_hostent(h);
	return 1;
}

static int db_hosts(int n, char **keys)
{
	int i, rc = 0;

	if (!n)
		return hosts_enumerate();
	for (i = 0; i < n; i++)
		if (!hosts_key(keys[i]))
			rc = 2;
	return rc;
}

/* getaddrinfo() answers: each address once per socket type, the canonical name on the first line. */
static int ahosts(int n, char **keys, int af)
{
	static const char *const types[] = { "STREAM", "DGRAM", "RAW" };
	struct addrinfo hints, *res, *r, *q;
	char buf[INET6_ADDRSTRLEN];
	const char *canon;
	int i, t, rc = 0;

	if (!n)
		return hosts_enumerate();
	for (i = 0; i < n; i++) {
		memset(&hints, 0, sizeof hints);
		hints.ai_family = af;
		hints.ai_flags = AI_CANONNAME | (addrconfig ? AI_ADDRCONFIG : 0)
		                 | (af == AF_INET6 ? AI_V4MAPPED : 0);
		if (getaddrinfo(keys[i], NULL, &hints, &res) != 0) {
			rc = 2;
			continue;
		}
		canon = res->ai_canonname ? res->ai_canonname : keys[i];
		for (r = res; r; r = r->ai_next) {
			const void *p = r->ai_family == AF_INET
			    ? (const void *)&((struct sockaddr_in *)r->ai_addr)->sin_addr
			    : (const void *)&((struct sockaddr_in6 *)r->ai_addr)->sin6_addr;
			/* skip an address already printed */
			for (q = res; q != r; q = q->ai_next)
				if (q->ai_family == r->ai_family && q->ai_addrlen == r->ai_addrlen
				    && !memcmp(q->ai_addr, r->ai_addr, r->ai_addrlen))
					break;
			if (q != r)
				continue;
			inet_ntop(r->ai_family, p, buf, sizeof buf);
			for (t = 0; t < 3; t++) {
				printf("%-15s %-6s %s\n", buf, types[t], canon);
				canon = "";
			}
		}
		freeaddrinfo(res);
	}
	return rc;
}

static int db_ahosts(int n, char **keys)
{
	return ahosts(n, keys, AF_UNSPEC);
}

static int db_ahostsv4(int n, char **keys)
{
	return ahosts(n, keys, AF_INET);
}

static int db_ahostsv6(int n, char **keys)
{
	return ahosts(n, keys, AF_INET6);
}

/* ---- services, protocols, networks: from the files ---- */

static void print_entry(const char *name, const char *value, char **aliases)
{
	printf("%-21s %s", name, value);
	for (; *aliases; aliases++)
		printf(" %s", *aliases);
	putchar('\n');
}

/* Fields of one services line: name port/proto aliases... */
static int service_line(char *line, char **f, long *port, char **proto)
{
	char *slash, *end;

	if (split(line, f) < 2 || !(slash = strchr(f[1], '/')))
		return 0;
	*slash = 0;
	*port = strtol(f[1], &end, 10);
	if (end == f[1] || *end)
		return 0;
	*port &= 0xffff;
	*proto = slash + 1;
	return 1;
}

/* A key is a port when it starts with a digit; "name/proto" or "port/proto" limits the protocol. */
static int services_key(FILE *fp, const char *key)
{
	char k[256], line[1024], *f[MAXF], *proto, *want, buf[64], **a;
	int by_port;
	long port, num = 0;

	snprintf(k, sizeof k, "%s", key);
	want = strchr(k, '/');
	if (want)
		*want++ = 0;
	by_port = isdigit((unsigned char)k[0]);
	if (by_port)
		num = strtol(k, NULL, 10);
	rewind(fp);
	while (fgets(line, sizeof line, fp)) {
		if (!service_line(line, f, &port, &proto) || (want && strcmp(want, proto)))
			continue;
		if (by_port) {
			if (port != num)
				continue;
		} else if (strcmp(f[0], k)) {
			for (a = f + 2; *a && strcmp(*a, k); a++)
				;
			if (!*a)
				continue;
		}
		snprintf(buf, sizeof buf, "%ld/%s", port, proto);
		print_entry(f[0], buf, f + 2);
		return 1;
	}
	return 0;
}

/* No /etc/services: what musl answers (tcp and udp only, no aliases). */
static int services_musl(const char *key)
{
	char k[256], buf[64], *want, *none[] = { NULL };
	struct servent *s;

	snprintf(k, sizeof k, "%s", key);
	want = strchr(k, '/');
	if (want)
		*want++ = 0;
	if (isdigit((unsigned char)k[0]))
		s = getservbyport(htons((unsigned short)atoi(k)), want);
	else
		s = getservbyname(k, want);
	if (!s)
		return 0;
	snprintf(buf, sizeof buf, "%d/%s", ntohs((unsigned short)s->s_port), s->s_proto);
	print_entry(s->s_name, buf, none);
	return 1;
}

static int db_services(int n, char **keys)
{
	char line[1024], *f[MAXF], *proto, buf[64];
	long port;
	int i, rc = 0;
	FILE *fp = fopen("/etc/services", "r");

	if (!n) {
		if (!fp)
			return 0;
		while (fgets(line, sizeof line, fp))
			if (service_line(line, f, &port, &proto)) {
				snprintf(buf, sizeof buf, "%ld/%s", port, proto);
				print_entry(f[0], buf, f + 2);
			}
		fclose(fp);
		return 0;
	}
	for (i = 0; i < n; i++)
		if (!(fp ? services_key(fp, keys[i]) : services_musl(keys[i])))
			rc = 2;
	if (fp)
		fclose(fp);
	return rc;
}

/* Print the protocols line for key (NULL: all lines); a key starting with a digit is a number. */
static int protocols_file(FILE *fp, const char *key)
{
	char line[1024], *f[MAXF], **a;
	int found = 0, by_num = key && isdigit((unsigned char)key[0]);
	long num = by_num ? strtol(key, NULL, 10) : 0;
	char *end;
	long p;

	rewind(fp);
	while (fgets(line, sizeof line, fp)) {
		if (split(line, f) < 2)
			continue;
		p = strtol(f[1], &end, 10);
		if (end == f[1] || *end)
			continue;
		if (key && by_num && p != num)
			continue;
		if (key && !by_num && strcmp(f[0], key)) {
			for (a = f + 2; *a && strcmp(*a, key); a++)
				;
			if (!*a)
				continue;
		}
		print_entry(f[0], f[1], f + 2);
		found = 1;
		if (key)
			break;
	}
	return found;
}

/* No /etc/protocols: musl's built-in table. */
static int protocols_musl(const char *key)
{
	struct protoent *p;
	char buf[16];

	if (!key) {
		setprotoent(0);
		while ((p = getprotoent())) {
			snprintf(buf, sizeof buf, "%d", p->p_proto);
			print_entry(p->p_name, buf, p->p_aliases);
		}
		endprotoent();
		return 1;
	}
	p = isdigit((unsigned char)key[0]) ? getprotobynumber(atoi(key)) : getprotobyname(key);
	if (!p)
		return 0;
	snprintf(buf, sizeof buf, "%d", p->p_proto);
	print_entry(p->p_name, buf, p->p_aliases);
	return 1;
}

static int db_protocols(int n, char **keys)
{
	FILE *fp = fopen("/etc/protocols", "r");
	int i, rc = 0;

	if (!n) {
		if (fp)
			protocols_file(fp, NULL);
		else
			protocols_musl(NULL);
	}
	for (i = 0; i < n; i++)
		if (!(fp ? protocols_file(fp, keys[i]) : protocols_musl(keys[i])))
			rc = 2;
	if (fp)
		fclose(fp);
	return rc;
}

/* A network number as written in /etc/networks: up to four parts, "10", "172.16", "127.0.0.0".
 * (musl's inet_network() reads "172.16" as an address, 172.0.0.16.) */
static int network_number(const char *s, unsigned long *out)
{
	unsigned long n = 0, part;
	int parts = 0;
	char *end;

	for (;;) {
		if (!isdigit((unsigned char)*s))
			return 0;
		part = strtoul(s, &end, 0);
		if (part > 255 || ++parts > 4)
			return 0;
		n = n << 8 | part;
		if (!*end)
			break;
		if (*end != '.')
			return 0;
		s = end + 1;
	}
	*out = n;
	return 1;
}

static void print_network(char **f, unsigned long net)
{
	struct in_addr in;

	in.s_addr = htonl((uint32_t)net);
	print_entry(f[0], inet_ntoa(in), f + 2);
}

/* musl has no networks database: read /etc/networks (name, number, aliases). */
static int networks_file(FILE *fp, const char *key)
{
	char line[1024], *f[MAXF], **a;
	unsigned long net, want = 0;
	int by_num = key && network_number(key, &want);

	rewind(fp);
	while (fgets(line, sizeof line, fp)) {
		if (split(line, f) < 2 || !network_number(f[1], &net))
			continue;
		while (net && !(net & 0xff000000UL))
			net <<= 8;
		if (key) {
			if (by_num) {
				if (net != want)
					continue;
			} else if (strcasecmp(f[0], key)) {
				for (a = f + 2; *a && strcasecmp(*a, key); a++)
					;
				if (!*a)
					continue;
			}
		}
		print_network(f, net);
		if (key)
			return 1;
	}
	return 0;
}

static int db_networks(int n, char **keys)
{
	FILE *fp = fopen("/etc/networks", "r");
	int i, rc = 0;

	if (!n) {
		if (fp) {
			networks_file(fp, NULL);
			fclose(fp);
		}
		return 0;
	}
	for (i = 0; i < n; i++)
		if (!fp || !networks_file(fp, keys[i]))
			rc = 2;
	if (fp)
		fclose(fp);
	return rc;
}

/* ---- main ---- */

static const struct db {
	const char *name;
	int (*fn)(int, char **);
	int enumerate;
} dbs[] = {
	{ "ahosts", db_ahosts, 1 },
	{ "ahostsv4", db_ahostsv4, 1 },
	{ "ahostsv6", db_ahostsv6, 1 },
	{ "group", db_group, 1 },
	{ "hosts", db_hosts, 1 },
	{ "initgroups", db_initgroups, 0 },
	{ "networks", db_networks, 1 },
	{ "passwd", db_passwd, 1 },
	{ "protocols", db_protocols, 1 },
	{ "services", db_services, 1 },
	{ "shadow", db_shadow, 1 },
};

static int finish(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "getent: write error: %s\n", strerror(errno));
		return 1;
	}
	return rc;
}

static void help(void)
{
	size_t i;

	printf("Usage: getent [OPTION...] DATABASE [KEY...]\n"
	       "Print entries of a system database: all of them, or those KEYs name.\n\n"
	       "  -A, --no-addrconfig   ahosts: keep addresses of families with no configured address\n"
	       "  -i, --no-idn          accepted, no effect\n"
	       "  -s, --service=CONFIG  accepted, no effect (musl has no name service switch)\n"
	       "  -?, --help            this text\n"
	       "      --usage           a short usage line\n"
	       "  -V, --version         the version\n\n"
	       "Databases:");
	for (i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
		printf(" %s", dbs[i].name);
	printf("\n\nExit status: 0 found, 1 bad arguments, 2 a key not found,\n"
	       "3 the database cannot be listed.\n");
}

static int bad_option(const char *fmt, const char *arg)
{
	fprintf(stderr, "getent: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n" TRY);
	return 64;
}

static const char *const long_options[] = {
	"help", "usage", "version", "no-idn", "no-addrconfig", "service"
};

/* One --option (a unique prefix will do, --service takes =CONFIG or the next word).
 * Returns an exit code to stop with, or -1 to go on. */
static int long_option(const char *a, int argc, int *i)
{
	const char *name = a + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name), k, found = 0, hits = 0;
	char msg[160];

	for (k = 0; k < sizeof long_options / sizeof long_options[0]; k++) {
		if (!strncmp(long_options[k], name, len)) {
			found = k;
			hits++;
			if (strlen(long_options[k]) == len) { /* an exact match wins */
				hits = 1;
				break;
			}
		}
	}
	if (hits == 0)
		return bad_option("unrecognized option '%s'", a);
	if (hits > 1) {
		fprintf(stderr, "getent: option '%s' is ambiguous; possibilities:", a);
		for (k = 0; k < sizeof long_options / sizeof long_options[0]; k++)
			if (!strncmp(long_options[k], name, len))
				fprintf(stderr, " '--%s'", long_options[k]);
		fprintf(stderr, "\n" TRY);
		return 64;
	}
	name = long_options[found];
	if (eq && strcmp(name, "service")) {
		snprintf(msg, sizeof msg, "--%s", name);
		return bad_option("option '%s' doesn't allow an argument", msg);
	}
	if (!strcmp(name, "help")) {
		help();
		return finish(0);
	} else if (!strcmp(name, "usage")) {
		printf("Usage: getent [-Ai?V] [-s CONFIG] [--no-addrconfig] [--no-idn]\n"
		       "            [--service=CONFIG] [--help] [--usage] [--version]\n"
		       "            database [key ...]\n");
		return finish(0);
	} else if (!strcmp(name, "version")) {
		printf("%s\n", VERSION_TEXT);
		return finish(0);
	} else if (!strcmp(name, "no-addrconfig")) {
		addrconfig = 0;
	} else if (!strcmp(name, "service") && !eq && ++*i == argc) {
		return bad_option("option '%s' requires an argument", a);
	}
	return -1;
}

int main(int argc, char **argv)
{
	char **args = argv + 1; /* the operands, gathered in place: args[n] is never past argv[i] */
	int i, n = 0, options = 1;
	size_t d;

	/* Options may come anywhere, as with glibc; "--" ends them. */
	for (i = 1; i < argc; i++) {
		char *a = argv[i];

		if (!options || a[0] != '-' || !a[1]) {
			args[n++] = a;
		} else if (!strcmp(a, "--")) {
			options = 0;
		} else if (a[1] == '-') {
			int r = long_option(a, argc, &i);
			if (r >= 0)
				return r;
		} else {
			char *c;

			for (c = a + 1; *c; c++) {
				char opt[2] = { *c, 0 };

				if (*c == 'A') {
					addrconfig = 0;
				} else if (*c == 'i') {
					;
				} else if (*c == '?') {
					help();
					return finish(0);
				} else if (*c == 'V') {
					printf("%s\n", VERSION_TEXT);
					return finish(0);
				} else if (*c == 's') {
					if (!c[1] && ++i == argc)
						return bad_option("option requires an argument -- '%s'", "s");
					break;
				} else {
					return bad_option("invalid option -- '%s'", opt);
				}
			}
		}
	}
	if (n == 0) {
		fprintf(stderr, "getent: wrong number of arguments\n");
		fputs(TRY, stdout);
		return finish(1);
	}
	for (d = 0; d < sizeof dbs / sizeof dbs[0]; d++)
		if (!strcmp(args[0], dbs[d].name))
			break;
	if (d == sizeof dbs / sizeof dbs[0]) {
		fprintf(stderr, "Unknown database: %s\n", args[0]);
		fputs(TRY, stdout);
		return finish(1);
	}
	if (n == 1 && !dbs[d].enumerate) {
		fprintf(stderr, "Enumeration not supported on %s\n", args[0]);
		return finish(3);
	}
	return finish(dbs[d].fn(n - 1, args + 1));
}
