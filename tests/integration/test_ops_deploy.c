/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of deploy/systemd, deploy/container and deploy/k8s: the units carry the
 * hardening the operations issue lists and pass secrets as credentials that the daemons
 * really read through *_FILE; systemd-analyze verifies them (when it is installed: skipped,
 * and said so, when not); they are Type=notify with a watchdog; the
 * container's runtime packages are exactly the libraries the binaries link; the sidecar
 * examples (idemd, auditd) probe /health and /ready on the metrics listener (METRICS_ADDR),
 * which Prometheus scrapes, and mount their secrets as files, and
 * auditd's unit and sidecar give it a state directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "auditd", "idemd", "tokend"};

static char tmp[256];

/* The one setting in a unit that is not a credential file. */
#define AUDITD_STATE "Environment=AUDIT_STATE_DIR=%S/warden-auditd"

static int setup(void **state)
{
    (void)state;
    if (access(ops_src("deploy/redis/redis.conf"), R_OK) != 0) {
        fprintf(stderr, "the source tree is not in the current directory (WARDEN_SRC)\n");
        return -1;
    }
    return th_tmpdir(tmp, sizeof(tmp));
}

static char *unit_text(const char *daemon)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "deploy/systemd/warden-%s.service", daemon);
    char *text = ops_read(ops_src(rel));
    if (!text)
        fail_msg("%s is missing", rel);
    return text;
}

/* Is line, exactly, one of text's lines? */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

static void test_units_are_hardened(void **state)
{
    (void)state;
    static const char *const LINES[] = {"Type=notify",
                                        "Restart=on-failure",
                                        "DynamicUser=yes",
                                        "NoNewPrivileges=yes",
                                        "ProtectSystem=strict",
                                        "ProtectHome=yes",
                                        "PrivateTmp=yes",
                                        "PrivateDevices=yes",
                                        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                                        "MemoryDenyWriteExecute=yes",
                                        "SystemCallFilter=@system-service",
                                        "LockPersonality=yes",
                                        "CapabilityBoundingSet=",
                                        "AmbientCapabilities=",
                                        NULL};
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = unit_text(DAEMONS[d]), line[128];
        for (int i = 0; LINES[i]; i++)
            if (!has_line(text, LINES[i]))
                fail_msg("warden-%s.service lacks %s", DAEMONS[d], LINES[i]);
        snprintf(line, sizeof(line), "ExecStart=/usr/bin/warden-%s", DAEMONS[d]);
        assert_true(has_line(text, line));
        snprintf(line, sizeof(line), "EnvironmentFile=/etc/warden/%s.env", DAEMONS[d]);
        assert_true(has_line(text, line));
        /* no secret in the unit itself: only *_FILE variables, and auditd's state dir */
        for (const char *p = strstr(text, "\nEnvironment="); p; p = strstr(p + 1, "\nEnvironment="))
            if ((!strstr(p, "_FILE=%d/") || strstr(p, "_FILE=%d/") > strchr(p + 1, '\n')) &&
                strncmp(p, "\n" AUDITD_STATE "\n", strlen(AUDITD_STATE) + 2) != 0)
                fail_msg("warden-%s.service: %.40s is not a credential file", DAEMONS[d], p + 1);
        free(text);
    }
    /* auditd remembers what it saw of its chain across restarts, in the unit's own
     * state directory (the only writable place besides the runtime one) */
    char *text = unit_text("auditd");
    assert_true(has_line(text, "StateDirectory=warden-auditd"));
    assert_true(has_line(text, "StateDirectoryMode=0700"));
    assert_true(has_line(text, AUDITD_STATE));
    free(text);
}

/* Each Environment=NAME_FILE=%d/ID against its LoadCredential=ID:..., into names/ids. */
static int unit_credentials(const char *text, char names[][64], char ids[][64], int max)
{
    int n = 0;
    for (const char *p = strstr(text, "\nEnvironment="); p && n < max;
         p = strstr(p + 1, "\nEnvironment=")) {
        if (sscanf(p + 1, "Environment=%63[A-Z0-9_]=%%d/%63[a-z0-9-]", names[n], ids[n]) != 2)
            continue;
        char want[96];
        snprintf(want, sizeof(want), "\nLoadCredential=%s:/etc/warden/credentials/", ids[n]);
        if (!strstr(text, want))
            fail_msg("%s names credential %s, which no LoadCredential provides", names[n], ids[n]);
        n++;
    }
    return n;
}

/* What to put in a credential file for a variable, so that --check-config accepts it. */
static const char *credential_content(const char *var, const char *pem)
{
    if (strcmp(var, "REDIS_URL_FILE") == 0)
        return "redis://idemd:secret@127.0.0.1:6379/0\n";
    if (strncmp(var, "AUDIT_PRIVATE_KEY", 17) == 0)
        return pem;
    if (strcmp(var, "TOKEN_HASH_KEY_FILE") == 0)
        return "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n";
    return "a-credential-of-thirty-two-bytes\n";
}

/* The variables the units hand over are read by the daemons: --check-config with only those
 * set reports each one's value as coming from that file. */
static void test_unit_credentials_are_read_by_the_daemons(void **state)
{
    (void)state;
    char *pem = NULL;
    const char *keygen[] = {"auditd", "keygen", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), keygen, NULL, &pem, NULL, 5000), 0);
    *strstr(pem, "public_key:") = '\0';
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = unit_text(DAEMONS[d]), names[8][64], ids[8][64], env[8][1200], bin[64];
        const char *envp[9] = {NULL};
        int n = unit_credentials(text, names, ids, 8);
        assert_true(n >= 2); /* at least the Redis URL and the API token */
        assert_true(strstr(text, "Environment=REDIS_URL_FILE=%d/") != NULL);
        for (int i = 0; i < n; i++) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s-%s", tmp, DAEMONS[d], ids[i]);
            assert_int_equal(th_write_file(path, credential_content(names[i], pem)), 0);
            assert_true(snprintf(env[i], sizeof(env[i]), "%s=%s", names[i], path) <
                        (int)sizeof(env[i]));
            envp[i] = env[i];
        }
        char *out = NULL;
        const char *argv[] = {DAEMONS[d], "--check-config", NULL};
        snprintf(bin, sizeof(bin), "bin/%s", DAEMONS[d]);
        int st = th_run(th_bin(bin), argv, envp, &out, NULL, 5000);
        if (st != 0)
            fail_msg("%s --check-config with the unit's credentials: exit %d", DAEMONS[d], st);
        for (int i = 0; i < n; i++) {
            char want[1300];
            assert_true(snprintf(want, sizeof(want), ", from %s", env[i]) < (int)sizeof(want));
            if (!strstr(out, want))
                fail_msg("%s does not read %s:\n%s", DAEMONS[d], names[i], out);
        }
        free(out);
        free(text);
    }
    free(pem);
}

/* The units, with ExecStart pointing at the built binaries, in tmp. */
static void copy_units(char *list, size_t size)
{
    list[0] = '\0';
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = unit_text(DAEMONS[d]), path[400], from[64];
        snprintf(from, sizeof(from), "ExecStart=/usr/bin/warden-%s", DAEMONS[d]);
        char *at = strstr(text, from);
        assert_non_null(at);
        FILE *f;
        snprintf(path, sizeof(path), "%s/warden-%s.service", tmp, DAEMONS[d]);
        assert_non_null(f = fopen(path, "w"));
        char bin[64];
        snprintf(bin, sizeof(bin), "bin/%s", DAEMONS[d]);
        fprintf(f, "%.*sExecStart=%s%s", (int)(at - text), text, th_bin(bin), at + strlen(from));
        fclose(f);
        snprintf(list + strlen(list), size - strlen(list), "%s%s", d ? "\n" : "", path);
        free(text);
    }
}

/* systemd-analyze verify: no error and no warning (it exits 0 on unknown keys, so stderr
 * must be empty too); systemd-analyze security: exposure at most 2.5. */
static void test_systemd_analyze_verify(void **state)
{
    (void)state;
    const char *tool = ops_which("systemd-analyze");
    if (!tool) {
        print_message("systemd-analyze is not installed (apt-get install systemd): SKIPPED\n");
        skip();
    }
    char sa[1024], list[2048], *paths[NDAEMONS];
    snprintf(sa, sizeof(sa), "%s", tool);
    copy_units(list, sizeof(list));
    paths[0] = strtok(list, "\n");
    for (int d = 1; d < NDAEMONS; d++)
        paths[d] = strtok(NULL, "\n");
    const char *argv[] = {"systemd-analyze", "verify", paths[0], paths[1],
                          paths[2],          paths[3], NULL};
    /* verify runs man(1) on each Documentation=man: page: the project's own pages, laid
     * out as an installed man tree */
    char mandir[300], manpath[320];
    snprintf(mandir, sizeof(mandir), "%s/man", tmp);
    mkdir(mandir, 0755);
    snprintf(mandir, sizeof(mandir), "%s/man/man8", tmp);
    mkdir(mandir, 0755);
    assert_int_equal(access(mandir, W_OK), 0);
    for (int d = 0; d < NDAEMONS; d++) {
        char rel[96], dst[400];
        snprintf(rel, sizeof(rel), "docs/man/warden-%s.8", DAEMONS[d]);
        char *page = ops_read(ops_src(rel));
        assert_non_null(page);
        snprintf(dst, sizeof(dst), "%s/warden-%s.8", mandir, DAEMONS[d]);
        assert_int_equal(th_write_file(dst, page), 0);
        free(page);
    }
    snprintf(manpath, sizeof(manpath), "MANPATH=%s/man", tmp);
    const char *env[] = {manpath, NULL};
    char *out = NULL, *err = NULL;
    int st = th_run(sa, argv, env, &out, &err, 30000);
    if (st != 0 || (err && *err))
        fail_msg("systemd-analyze verify: exit %d\n%s%s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
    for (int d = 0; d < NDAEMONS; d++) {
        const char *sec[] = {"systemd-analyze", "security", "--offline=true",
                             "--threshold=25",  paths[d],   NULL};
        out = NULL;
        st = th_run(sa, sec, NULL, &out, NULL, 30000);
        if (st != 0)
            fail_msg("%s: exposure above 2.5:\n%s", paths[d], out ? out : "");
        free(out);
    }
}

/* Readiness is the daemon's own (sd_notify, test_sdnotify.c): Type=notify, notifications
 * from the main process only, a watchdog, no polling command; ExecReload only where
 * SIGHUP reloads something (ratelimitd's rules). */
static void test_units_are_type_notify(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = unit_text(DAEMONS[d]), v[256];
        assert_true(has_line(text, "Type=notify"));
        assert_true(has_line(text, "NotifyAccess=main"));
        assert_non_null(ops_unit_value(text, "WatchdogSec", v, sizeof(v)));
        assert_null(ops_unit_value(text, "ExecStartPost", v, sizeof(v)));
        if (strcmp(DAEMONS[d], "ratelimitd") == 0)
            assert_true(has_line(text, "ExecReload=/bin/kill -HUP $MAINPID"));
        else
            assert_null(ops_unit_value(text, "ExecReload", v, sizeof(v)));
        free(text);
    }
}

/* ---- the container image ------------------------------------------------------------------- */

/* The packages of the runtime stage's apt-get install (after its last FROM). */
static void runtime_packages(const char *dockerfile, struct ops_set *out)
{
    const char *stage = dockerfile, *p;
    while ((p = strstr(stage + 1, "\nFROM ")) != NULL)
        stage = p;
    const char *from = strstr(stage, "--no-install-recommends");
    assert_non_null(from);
    from += strlen("--no-install-recommends");
    const char *end = strstr(from, "&&");
    assert_non_null(end);
    char list[1024];
    snprintf(list, sizeof(list), "%.*s", (int)(end - from), from);
    for (char *t = strtok(list, " \\\n"); t; t = strtok(NULL, " \\\n"))
        ops_set_add(out, t, strlen(t), 0);
}

/* The package holding soname as the binary loads it (ldd's path, then dpkg -S). */
static void package_of(const char *ldd_out, const char *soname, struct ops_set *out)
{
    char key[160], path[512];
    snprintf(key, sizeof(key), "\t%s => ", soname);
    const char *p = strstr(ldd_out, key);
    if (!p)
        fail_msg("ldd does not resolve %s", soname);
    sscanf(p + strlen(key), "%511s", path);
    for (int usr = 0; usr < 2; usr++) {
        char q[600], *o = NULL;
        snprintf(q, sizeof(q), "%s%s", usr ? "/usr" : "", path);
        const char *argv[] = {"dpkg", "-S", q, NULL};
        if (th_run(ops_which("dpkg"), argv, NULL, &o, NULL, 10000) == 0 && o) {
            ops_set_add(out, o, strcspn(o, ":"), 0);
            free(o);
            return;
        }
        free(o);
    }
    fail_msg("no Debian package holds %s", path);
}

/* The packages providing every library a built binary links directly (readelf NEEDED). */
static void linked_packages(struct ops_set *out)
{
    static const char *const BINS[] = {"ratelimitd",   "auditd",       "idemd", "tokend",
                                       "audit-verify", "audit-export", NULL};
    char readelf[1024], ldd[1024];
    snprintf(readelf, sizeof(readelf), "%s", ops_which("readelf"));
    snprintf(ldd, sizeof(ldd), "%s", ops_which("ldd"));
    for (int b = 0; BINS[b]; b++) {
        char rel[64], *dyn = NULL, *libs = NULL;
        snprintf(rel, sizeof(rel), "bin/%s", BINS[b]);
        const char *bin = th_bin(rel);
        const char *r_argv[] = {"readelf", "-d", bin, NULL}, *l_argv[] = {"ldd", bin, NULL};
        assert_int_equal(th_run(readelf, r_argv, NULL, &dyn, NULL, 10000), 0);
        assert_int_equal(th_run(ldd, l_argv, NULL, &libs, NULL, 10000), 0);
        for (const char *p = strstr(dyn, "(NEEDED)"); p; p = strstr(p + 1, "(NEEDED)")) {
            char soname[128];
            if (sscanf(p, "(NEEDED) Shared library: [%127[^]]]", soname) == 1)
                package_of(libs, soname, out);
        }
        free(dyn);
        free(libs);
    }
}

static void test_container_runtime_is_what_the_binaries_link(void **state)
{
    (void)state;
    if (!ops_which("readelf") || !ops_which("ldd") || !ops_which("dpkg")) {
        print_message("readelf, ldd or dpkg is not installed: SKIPPED\n");
        skip();
    }
    char *df = ops_read(ops_src("deploy/container/Dockerfile")), diff[1024];
    assert_non_null(df);
    assert_non_null(strstr(df, "\nFROM debian:12-slim AS build\n")); /* multi-stage */
    assert_non_null(strstr(df, "\nUSER 10001:10001\n"));             /* non-root */
    struct ops_set listed = {0}, linked = {0}, allowed = {0};
    runtime_packages(df, &listed);
    linked_packages(&linked);
    if (ops_set_has(&linked, "libasan8") || ops_set_has(&linked, "libubsan1")) {
        print_message("a sanitizer build (make asan): the image holds release builds: SKIPPED\n");
        ops_set_free(&listed);
        ops_set_free(&linked);
        free(df);
        skip();
        return; /* not reached: skip ends the test */
    }
    ops_set_add(&listed, "libc6", 5, 0); /* in every Debian image */
    if (ops_set_minus(&linked, &listed, diff, sizeof(diff)) > 0)
        fail_msg("the binaries link libraries of packages the runtime stage lacks:%s", diff);
    ops_set_add(&allowed, "curl", 4, 0); /* the exec probes' client */
    ops_set_add(&allowed, "libc6", 5, 0);
    for (int i = 0; i < linked.n; i++)
        ops_set_add(&allowed, linked.items[i], strlen(linked.items[i]), 0);
    if (ops_set_minus(&listed, &allowed, diff, sizeof(diff)) > 0)
        fail_msg("the runtime stage installs packages nothing needs:%s", diff);
    ops_set_free(&listed);
    ops_set_free(&linked);
    ops_set_free(&allowed);
    free(df);
}

/* One sidecar example: a second container on loopback, probes on /health and /ready,
 * secrets as read-only files read through *_FILE, limits, the image's non-root user, and
 * the lines of its own (NULL-terminated) besides. */
static void check_sidecar(const char *daemon, int port, const char *const *own)
{
    char rel[96], must[24][128];
    int n = 0;
    snprintf(rel, sizeof(rel), "deploy/k8s/%s-sidecar.yaml", daemon);
    char *y = ops_read(ops_src(rel));
    if (!y)
        fail_msg("%s is missing", rel);
    snprintf(must[n++], sizeof(must[0]), "- name: %s", daemon);
    snprintf(must[n++], sizeof(must[0]), "{name: LISTEN_ADDR, value: \"127.0.0.1:%d\"}", port);
    /* probes and scraping on the metrics listener, the API on loopback */
    snprintf(must[n++], sizeof(must[0]), "{name: METRICS_ADDR, value: \"0.0.0.0:9090\"}");
    snprintf(must[n++], sizeof(must[0]), "- {name: metrics, containerPort: 9090}");
    snprintf(must[n++], sizeof(must[0]), "httpGet: {path: /health, port: metrics}");
    snprintf(must[n++], sizeof(must[0]), "httpGet: {path: /ready, port: metrics}");
    snprintf(must[n++], sizeof(must[0]), "prometheus.io/port: \"9090\"");
    snprintf(must[n++], sizeof(must[0]), "secretName: warden-%s", daemon);
    static const char *const COMMON[] = {
        "- name: app",
        "livenessProbe:",
        "readinessProbe:",
        "limits: {cpu:",
        "{name: REDIS_URL_FILE, value: \"/run/secrets/warden/redis-url\"}",
        "{name: API_TOKEN_FILE, value: \"/run/secrets/warden/api-token\"}",
        "{name: warden-secrets, mountPath: /run/secrets/warden, readOnly: true}",
        "runAsNonRoot: true",
        "runAsUser: 10001",
        "fsGroup: 10001",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        NULL};
    for (int i = 0; COMMON[i]; i++)
        snprintf(must[n++], sizeof(must[0]), "%s", COMMON[i]);
    for (int i = 0; i < n; i++)
        if (!strstr(y, must[i]))
            fail_msg("%s lacks %s", rel, must[i]);
    for (int i = 0; own && own[i]; i++)
        if (!strstr(y, own[i]))
            fail_msg("%s lacks %s", rel, own[i]);
    assert_null(strstr(y, "{name: REDIS_URL,")); /* never the secret itself in the env */
    assert_null(strstr(y, "{name: API_TOKEN,"));
    assert_null(strstr(y, "{name: AUDIT_PRIVATE_KEY_V1,"));
    free(y);
}

static void test_k8s_sidecar_example(void **state)
{
    (void)state;
    /* auditd: its key as a file, and a writable volume for what it has seen of the chain
     * (the root file system is read-only) */
    static const char *const AUDITD[] = {
        "{name: AUDIT_PRIVATE_KEY_V1_FILE, value: \"/run/secrets/warden/key-v1\"}",
        "{name: AUDIT_STATE_DIR, value: \"/var/lib/warden-auditd\"}",
        "{name: auditd-state, mountPath: /var/lib/warden-auditd}",
        "- name: auditd-state\n          emptyDir:", NULL};
    check_sidecar("idemd", 8083, NULL);
    check_sidecar("auditd", 8082, AUDITD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_are_hardened),
        cmocka_unit_test(test_unit_credentials_are_read_by_the_daemons),
        cmocka_unit_test(test_systemd_analyze_verify),
        cmocka_unit_test(test_units_are_type_notify),
        cmocka_unit_test(test_container_runtime_is_what_the_binaries_link),
        cmocka_unit_test(test_k8s_sidecar_example),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
