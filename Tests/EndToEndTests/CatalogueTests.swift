import Foundation
import TestFleet
import Testing

/// One fabric-scripts task run through the real binary on the test fleet.
struct CatalogueCase: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var setup: @Sendable (CatalogueFleet) throws -> Void = { _ in }
    /// Every stub call the run must make, per host in this order, and no other.
    var calls: [ExpectedCall] = []
    var status: Int32 = 0
    /// Text the output must contain.
    var output: [String] = []
    var verify: @Sendable (CatalogueFleet) throws -> Void = { _ in }

    var testDescription: String { arguments.joined(separator: " ") }
}

/// The shared fleet (one per test process; its watcher stops it when the process ends).
let sharedCatalogueFleet = Result { try CatalogueFleet() }

let eval = "--eval"
let isMaster = "rs.isMaster().ismaster"
/// The mongo stub: answers isMaster from `primary`, the health check from `cluster_ok`.
let mongoStub = """
    case "$*" in
      *isMaster*) cat "$d/primary" 2>/dev/null || echo false ;;
      *'rs.status().members'*) [ -f "$d/cluster_ok" ] && { echo 'Cluster is OK'; exit 0; }; echo 'Cluster is NOT OK'; exit 1 ;;
      *stepDown*) echo false >"$d/primary"; exit 252 ;;
      *) echo 'replication info' ;;
    esac
    """
let stubs = TestFleetHostStubs.stateDirectory

func initScript(_ fleet: CatalogueFleet, _ host: String, _ service: String) throws {
    try fleet.write(host, "/etc/init.d/\(service)", "#!/bin/sh\nexit 0\n", mode: 0o755)
}

/// Downtime lines the alert host received for `host`.
func downtime(_ fleet: CatalogueFleet, for host: String) -> [String] {
    (fleet.read("alert-1", "/var/lib/icinga/rw/nagios.cmd") ?? "").split(separator: "\n").map(String.init)
        .filter { $0.contains(";\(host).publishing.service.gov.uk;") }
}

func expectDowntime(_ fleet: CatalogueFleet, for host: String, minutes: Int = 20) {
    let lines = downtime(fleet, for: host)
    #expect(lines.count == 2, "\(lines)")
    guard lines.count == 2 else { return }
    let fields = lines[0].split(separator: ";").map(String.init)
    #expect(fields.count == 9 && fields[0].hasSuffix("SCHEDULE_HOST_SVC_DOWNTIME"), "\(lines[0])")
    if fields.count == 9, let start = Int(fields[2]), let end = Int(fields[3]) {
        #expect(end - start == minutes * 60)
        #expect(fields[6] == String(minutes * 60))
    }
    #expect(
        lines[1].contains(
            "ADD_HOST_COMMENT;\(host).publishing.service.gov.uk;0;\(try! sharedCatalogueFleet.get().fleet.user);downtime scheduled by"
        ))
}

let rabbitHealthy = """
    [{nodes,[{disc,['rabbit@rabbitmq-1','rabbit@rabbitmq-2']}]},
     {running_nodes,['rabbit@rabbitmq-2','rabbit@rabbitmq-1']},
     {cluster_name,<<"rabbit@rabbitmq-1">>},
     {partitions,[]}]

    """
let slaveStatus = """
    *************************** 1. row ***************************
       Relay_Master_Log_File: mysql-bin.000042
         Exec_Master_Log_Pos: 1234
       Seconds_Behind_Master: 0

    """

let catalogueCases: [CatalogueCase] = [
    // Top level
    CatalogueCase(
        arguments: ["-H", "backend-1", "do:facter hostname"], calls: [plainCall("backend-1", "facter", "hostname")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "sdo:facter hostname"], calls: [sudoCall("backend-1", "facter", "hostname")]),
    // app
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.start:publisher"], setup: { try initScript($0, "backend-1", "publisher") },
        calls: [sudoCall("backend-1", "service", "publisher", "start")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.stop:publisher"], setup: { try initScript($0, "backend-1", "publisher") },
        calls: [sudoCall("backend-1", "service", "publisher", "stop")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.restart:publisher"],
        setup: { try initScript($0, "backend-1", "publisher") },
        calls: [sudoCall("backend-1", "service", "publisher", "restart")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.reload:publisher"], setup: { try initScript($0, "backend-1", "publisher") },
        calls: [sudoCall("backend-1", "service", "publisher", "reload")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.status:publisher"], setup: { try initScript($0, "backend-1", "publisher") },
        calls: [sudoCall("backend-1", "service", "publisher", "status")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.setenv:publisher,GOVUK_FLAG,it's; $(reboot) `id` && \"x\""],
        setup: { try $0.write("backend-1", "/etc/govuk/publisher/env.d/.keep", "") },
        verify: {
            #expect($0.read("backend-1", "/etc/govuk/publisher/env.d/GOVUK_FLAG") == "it's; $(reboot) `id` && \"x\"")
        }),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.rmenv:publisher,GOVUK_FLAG"],
        setup: { try $0.write("backend-1", "/etc/govuk/publisher/env.d/GOVUK_FLAG", "1") },
        verify: { #expect($0.read("backend-1", "/etc/govuk/publisher/env.d/GOVUK_FLAG") == nil) }),
    CatalogueCase(
        arguments: ["-H", "backend-1", "app.respawn_large_unicorns:publisher"],
        setup: { try $0.write("backend-1", "/run/publisher/app.pid", "1\n") },
        status: 1, output: ["App not running unicorn"]),
    // puppet
    CatalogueCase(arguments: ["class:backend", "puppet"], calls: [sudoCall("backend-1", "govuk_puppet", "--test")]),
    CatalogueCase(
        arguments: ["class:backend", "puppet.agent"], calls: [sudoCall("backend-1", "govuk_puppet", "--test")]),
    CatalogueCase(
        arguments: ["class:backend", "puppet.disable:deploying a fix"],
        calls: [sudoCall("backend-1", "govuk_puppet", "--test", "--disable", "deploying a fix (by {user})")]),
    CatalogueCase(
        arguments: ["class:backend", "puppet.enable"],
        calls: [sudoCall("backend-1", "govuk_puppet", "--test", "--enable")]),
    CatalogueCase(
        arguments: ["class:cache", "puppet.check_disabled"],
        setup: { try $0.write("cache-1", "/var/lib/puppet/state/agent_disabled.lock", "{}") },
        output: ["DISABLED", "ENABLED"]),
    CatalogueCase(
        arguments: ["class:backend", "puppet.dryrun"],
        setup: { try $0.behave("backend-1", "govuk_puppet", stdout: "Notice: noop run\n") },
        calls: [sudoCall("backend-1", "govuk_puppet", "--test", "--noop")], output: ["Notice: noop run"]),
    CatalogueCase(
        arguments: ["puppet.lookup_hieradata:govuk::apps::publisher::port"],
        setup: { try $0.behave("puppetmaster-1", "hiera", stdout: "3093\n") },
        calls: [
            plainCall(
                "puppetmaster-1", "hiera", "--config", "/usr/share/puppet/production/current/hiera.yml",
                "govuk::apps::publisher::port", "::environment=production", "::lsbdistcodename=precise",
                "::settings::manifestdir=/usr/share/puppet/production/current/manifests")
        ],
        output: ["govuk::apps::publisher::port: 3093"]),
    CatalogueCase(
        arguments: ["puppet.sign_certificates:3,0"], setup: { try $0.behave("puppetmaster-1", "puppet", exit: 24) },
        calls: Array(repeating: sudoCall("puppetmaster-1", "puppet", "cert", "sign", "--all"), count: 3)),
    CatalogueCase(
        arguments: ["class:backend", "puppet.cert_clean"],
        setup: {
            try $0.write("backend-1", "/var/lib/puppet/state/classes.txt", "govuk::node::s_backend\n")
            try $0.write("backend-1", "/etc/puppet/ssl/certs/old.pem", "x")
        },
        calls: [sudoCall("backend-1", "service", "puppet", "stop"), sudoCall("backend-1", "puppet", "agent", "-t")],
        verify: { #expect($0.read("backend-1", "/etc/puppet/ssl/certs/old.pem") == nil) }),
    CatalogueCase(
        arguments: ["-H", "puppetmaster-1", "puppet.cert_clean"],
        setup: { try $0.write("puppetmaster-1", "/var/lib/puppet/state/classes.txt", "puppet::master\n") },
        output: ["I am a puppet master. Hence, we are skipping."]),
    CatalogueCase(
        arguments: ["class:backend", "puppet.agent_run"], setup: { try $0.behave("backend-1", "puppet", exit: 2) },
        calls: [sudoCall("backend-1", "puppet", "agent", "-t")]),
    CatalogueCase(
        arguments: ["class:backend", "puppet.config_version"],
        setup: {
            try $0.write(
                "backend-1", "/var/lib/puppet/state/last_run_summary.yaml",
                "version:\n  config: \"abc123\"\ntime:\n  last_run: 1600000000\n")
        },
        output: ["sha:abc123 time:1600000000"]),
    // vm
    CatalogueCase(arguments: ["-H", "backend-1", "vm.uptime"], output: ["load average"]),
    CatalogueCase(arguments: ["-H", "backend-1", "vm.free"], output: ["Mem:"]),
    CatalogueCase(arguments: ["-H", "backend-1", "vm.top_mem_proc"], output: ["sshd"]),
    CatalogueCase(arguments: ["-H", "backend-1", "vm.disk"], output: ["Filesystem"]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "vm.os_version"],
        calls: [
            plainCall(
                "backend-1", "facter", "lsbdistcodename", "lsbdistdescription", "operatingsystem",
                "operatingsystemrelease")
        ]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "vm.deprecated_library:libssl"],
        setup: {
            try $0.behave(
                "backend-1", "lsof",
                stdout:
                    "nginx 12 root DEL REG 8,1 456 /usr/lib/libssl.so.1.1\nruby 13 root DEL REG 8,1 457 /usr/lib/libz.so.1\n"
            )
        },
        calls: [sudoCall("backend-1", "lsof", "-d", "DEL")], output: ["/usr/lib/libssl.so.1.1"],
        verify: { _ in }),
    CatalogueCase(
        arguments: ["-H", "backend-1", "vm.stopped_jobs"],
        setup: {
            try $0.write("backend-1", "/etc/init/publisher.conf", "exec govuk_spinup publisher\n")
            try $0.write("backend-1", "/etc/init/cron.conf", "exec cron\n")
            try $0.behave("backend-1", "status", stdout: "publisher stop/waiting\n")
        },
        calls: [sudoCall("backend-1", "status", "publisher")], output: ["publisher stop/waiting"]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "vm.bodge_unicorn:content-tagger"],
        calls: [sudoCall("backend-1", "start", "content-tagger")]),
    CatalogueCase(
        arguments: ["-H", "cache-1", "vm.reboot"],
        setup: { try $0.behave("cache-1", "check_reboot_required", exit: 1) },
        calls: [
            plainCall("cache-1", "check_reboot_required", "30", "0"), sudoCall("cache-1", "shutdown", "-r", "now"),
        ],
        verify: { fleet in
            expectDowntime(fleet, for: "cache-1")
            // The downtime is scheduled before the reboot.
            let written =
                try FileManager.default.attributesOfItem(
                    atPath: fleet.realPath("alert-1", "/var/lib/icinga/rw/nagios.cmd"))[.modificationDate] as? Date
            let reboot = try fleet.calls()["cache-1"]?.last?.time
            if let written, let reboot { #expect(UInt64(written.timeIntervalSince1970 * 1e9) <= reboot) }
        }),
    CatalogueCase(
        arguments: ["-H", "cache-1", "vm.reboot"],
        setup: { try $0.behave("cache-1", "check_reboot_required", exit: 0) },
        calls: [plainCall("cache-1", "check_reboot_required", "30", "0")], output: ["No reboot required"],
        verify: { #expect(downtime($0, for: "cache-1").isEmpty) }),
    CatalogueCase(
        arguments: ["-H", "cache-1", "vm.force_reboot"], calls: [sudoCall("cache-1", "shutdown", "-r", "now")],
        verify: { expectDowntime($0, for: "cache-1") }),
    CatalogueCase(
        arguments: ["-H", "cache-2", "vm.poweroff"], calls: [sudoCall("cache-2", "poweroff")],
        verify: { expectDowntime($0, for: "cache-2") }),
    CatalogueCase(
        arguments: ["vm.host_key:backend-1.backend"],
        output: ["Machine backend-1.backend not found in ssh_known_hosts file"]),
    CatalogueCase(arguments: ["-H", "backend-1", "vm.connected_users"], output: ["connected"]),
    // nagios
    CatalogueCase(
        arguments: ["nagios.schedule_downtime:cache-2,30"], verify: { expectDowntime($0, for: "cache-2", minutes: 30) }),
    // incident
    CatalogueCase(
        arguments: ["class:cache", "incident.fail_to_mirror"],
        calls: [
            sudoCall(
                "cache-1", "govuk_puppet", "--test", "--disable", "Fabric fail_to_mirror task invoked (by {user})"),
            sudoCall("cache-1", "service", "nginx", "stop"),
            sudoCall(
                "cache-2", "govuk_puppet", "--test", "--disable", "Fabric fail_to_mirror task invoked (by {user})"),
            sudoCall("cache-2", "service", "nginx", "stop"),
        ],
        output: ["Disabled Puppet and switched off Nginx"]),
    CatalogueCase(
        arguments: ["class:cache", "incident.recover_origin"],
        calls: [
            sudoCall("cache-1", "govuk_puppet", "--test", "--enable"), sudoCall("cache-1", "govuk_puppet", "--test"),
            sudoCall("cache-2", "govuk_puppet", "--test", "--enable"), sudoCall("cache-2", "govuk_puppet", "--test"),
        ]),
    // nginx
    CatalogueCase(
        arguments: ["class:cache", "nginx.enable_maintenance"],
        setup: { try $0.write("cache-1", "/etc/nginx/includes/maintenance.conf", "set $maintenance 0;\n") },
        calls: [
            sudoCall("cache-1", "govuk_puppet", "--test", "--disable", "Maintenance mode enabled (by {user})"),
            sudoCall("cache-1", "service", "nginx", "reload"),
        ],
        status: 1, output: ["only runs on load balancers"],
        verify: { #expect($0.read("cache-1", "/etc/nginx/includes/maintenance.conf") == "set $maintenance 1;\n") }),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.disable_maintenance"],
        setup: { try $0.write("cache-1", "/etc/nginx/includes/maintenance.conf", "set $maintenance 1;\n") },
        calls: [
            sudoCall("cache-1", "service", "nginx", "reload"),
            sudoCall("cache-1", "govuk_puppet", "--test", "--enable"),
        ],
        verify: { #expect($0.read("cache-1", "/etc/nginx/includes/maintenance.conf") == "set $maintenance 0;\n") }),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.configtest"], calls: [sudoCall("cache-1", "service", "nginx", "configtest")]
    ),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.kill"], calls: [sudoCall("cache-1", "service", "nginx", "stop")]),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.start"], calls: [sudoCall("cache-1", "service", "nginx", "start")]),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.gracefulrestart"],
        calls: [
            sudoCall("cache-1", "service", "nginx", "configtest"), sudoCall("cache-1", "nginx", "-s", "quit"),
            sudoCall("cache-1", "service", "nginx", "start"),
        ]),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.gracefulrestart:force=true"],
        calls: [sudoCall("cache-1", "nginx", "-s", "quit"), sudoCall("cache-1", "service", "nginx", "start")]),
    CatalogueCase(
        arguments: ["-H", "cache-1", "nginx.force_restart"],
        calls: [sudoCall("cache-1", "service", "nginx", "stop"), sudoCall("cache-1", "service", "nginx", "start")]),
    // cache
    CatalogueCase(
        arguments: ["-H", "cache-1", "cache.ban_all"], calls: [sudoCall("cache-1", "varnishadm", "ban req.url ~ .")]),
    CatalogueCase(
        arguments: ["-H", "cache-1", "cache.restart"], calls: [sudoCall("cache-1", "service", "varnish", "restart")]),
    CatalogueCase(arguments: ["-H", "cache-1", "cache.stats"], calls: [sudoCall("cache-1", "varnishstat", "-1")]),
    CatalogueCase(arguments: ["-H", "cache-1", "cache"], calls: [sudoCall("cache-1", "varnishstat", "-1")]),
    // apt
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.updates"],
        setup: {
            try $0.write(
                "backend-1", "/var/lib/update-notifier/updates-available", "3 updates can be applied immediately.\n")
        },
        output: ["3 updates can be applied immediately."]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.security_updates"],
        calls: [plainCall("backend-1", "govuk_check_security_upgrades", "--human-readable")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.unattended_upgrade"],
        calls: [sudoCall("backend-1", "unattended-upgrade", "-d")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.unattended_upgrade_dry_run"],
        calls: [sudoCall("backend-1", "unattended-upgrade", "-d", "--dry-run")]),
    CatalogueCase(
        arguments: ["all", "apt.packages_with_reboots"],
        output: [FileManager.default.fileExists(atPath: "/run/reboot-required.pkgs") ? "" : "No packages with reboots"]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt"],
        output: [FileManager.default.fileExists(atPath: "/run/reboot-required.pkgs") ? "" : "No packages with reboots"]),
    // /var/run is the test machine's own: only a dry run when it has a real flag file.
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.reset_reboot_needed"]
            + (FileManager.default.fileExists(atPath: "/run/reboot-required") ? ["--dry-run"] : [])),
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.autoremove"],
        calls: [sudoCall("backend-1", "apt-get", "--yes", "autoremove")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "apt.autoremove_dry_run"],
        calls: [sudoCall("backend-1", "apt-get", "autoremove", "--dry-run")]),
    CatalogueCase(arguments: ["-H", "backend-1", "apt.update"], calls: [sudoCall("backend-1", "apt-get", "update")]),
    // locksmith
    CatalogueCase(
        arguments: ["all", "locksmith.status"],
        calls: CatalogueFleet.layout.map {
            plainCall($0.name, "locksmithctl", "-endpoint=http://etcd.cluster:2379", "status")
        }),
    CatalogueCase(
        arguments: ["-H", "backend-1", "locksmith.unlock:cache-1"],
        calls: [plainCall("backend-1", "locksmithctl", "-endpoint=http://etcd.cluster:2379", "unlock", "cache-1")]),
    // mongo
    CatalogueCase(
        arguments: ["class:mongo", "mongo.find_primary"],
        setup: {
            try $0.script("mongo-1", "mongo", mongoStub)
            try $0.script("mongo-2", "mongo", mongoStub)
            try $0.write("mongo-1", "\(stubs)/primary", "true\n", mode: 0o666)
        },
        calls: [
            plainCall("mongo-1", "mongo", "--quiet", eval, isMaster),
            plainCall("mongo-2", "mongo", "--quiet", eval, isMaster),
        ],
        output: ["mongo-1 is primary", "mongo-2 is not primary"]),
    CatalogueCase(
        arguments: ["class:mongo", "mongo.status"],
        setup: {
            try $0.script("mongo-1", "mongo", mongoStub)
            try $0.write("mongo-1", "\(stubs)/cluster_ok", "")
        },
        calls: [plainCall("mongo-1", "mongo", "--quiet", eval, "~rs.status().members")], output: ["Cluster is OK"]),
    CatalogueCase(
        arguments: ["class:mongo", "mongo.status"], setup: { try $0.script("mongo-1", "mongo", mongoStub) },
        calls: [
            plainCall("mongo-1", "mongo", "--quiet", eval, "~rs.status().members"),
            plainCall("mongo-1", "mongo", "--quiet", eval, "~db.printReplicationInfo()"),
        ], output: ["replication info"]),
    CatalogueCase(
        arguments: ["-H", "mongo-1", "mongo.step_down_primary"],
        setup: {
            try $0.script("mongo-1", "mongo", mongoStub)
            try $0.write("mongo-1", "\(stubs)/primary", "true\n", mode: 0o666)
        },
        calls: [
            plainCall("mongo-1", "mongo", "--quiet", eval, isMaster),
            plainCall("mongo-1", "mongo", "--quiet", eval, "rs.stepDown(100)"),
            plainCall("mongo-1", "mongo", "--quiet", eval, isMaster),
        ],
        output: ["I am no longer the primary"]),
    CatalogueCase(
        arguments: ["-H", "mongo-1", "mongo.safe_reboot"],
        setup: {
            try $0.script("mongo-1", "mongo", mongoStub)
            try $0.write("mongo-1", "\(stubs)/primary", "true\n", mode: 0o666)
            try $0.write("mongo-1", "\(stubs)/cluster_ok", "")
            try $0.behave("mongo-1", "check_reboot_required", exit: 1)
        },
        calls: [
            plainCall("mongo-1", "check_reboot_required", "30", "0"),
            plainCall("mongo-1", "mongo", "--quiet", eval, "~rs.status().members"),
            plainCall("mongo-1", "mongo", "--quiet", eval, isMaster),
            plainCall("mongo-1", "mongo", "--quiet", eval, isMaster),
            plainCall("mongo-1", "mongo", "--quiet", eval, "rs.stepDown(100)"),
            plainCall("mongo-1", "mongo", "--quiet", eval, isMaster),
            plainCall("mongo-1", "mongo", "--quiet", eval, "~rs.status().members"),
            plainCall("mongo-1", "check_reboot_required", "30", "0"), sudoCall("mongo-1", "shutdown", "-r", "now"),
        ],
        verify: { expectDowntime($0, for: "mongo-1") }),
    CatalogueCase(
        arguments: ["-H", "mongo-2", "mongo.force_resync"],
        setup: {
            try $0.script("mongo-2", "mongo", mongoStub)
            try initScript($0, "mongo-2", "mongodb")
            try $0.write("mongo-2", "/var/lib/mongodb/collection-1.wt", "data")
        },
        calls: [
            plainCall("mongo-2", "mongo", "--quiet", eval, isMaster),
            sudoCall("mongo-2", "govuk_puppet", "--test", "--disable", "Forcing mongodb resync (by {user})"),
            sudoCall("mongo-2", "service", "mongodb", "stop"), sudoCall("mongo-2", "service", "mongodb", "start"),
            sudoCall("mongo-2", "govuk_puppet", "--test", "--enable"),
        ],
        verify: { #expect($0.read("mongo-2", "/var/lib/mongodb/collection-1.wt") == nil) }),
    CatalogueCase(
        arguments: ["-H", "mongo-1", "mongo.force_resync"],
        setup: {
            try $0.script("mongo-1", "mongo", mongoStub)
            try $0.write("mongo-1", "\(stubs)/primary", "true\n", mode: 0o666)
            try $0.write("mongo-1", "/var/lib/mongodb/collection-1.wt", "data")
        },
        calls: [plainCall("mongo-1", "mongo", "--quiet", eval, isMaster)], status: 1,
        output: ["Refusing to force resync on primary"],
        verify: { #expect($0.read("mongo-1", "/var/lib/mongodb/collection-1.wt") == "data") }),
    CatalogueCase(arguments: ["class:mongo", "mongo.force_resync"], status: 2, output: ["runs on at most 1 host"]),
    // mysql
    CatalogueCase(
        arguments: ["-H", "backend-1", "mysql.slave_status"],
        calls: [sudoCall("backend-1", "mysql", "-e", "SHOW SLAVE STATUS\\G")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "mysql.stop_slow_query_log"],
        calls: [sudoCall("backend-1", "mysql", "-e", "SET GLOBAL slow_query_log = \"OFF\"")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "mysql.start_slow_query_log"],
        calls: [sudoCall("backend-1", "mysql", "-e", "SET GLOBAL slow_query_log = \"ON\"")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "mysql.fix_replication_from_slow_query_log_after_upgrade"],
        calls: [
            sudoCall("backend-1", "mysql", "-e", "STOP SLAVE;"),
            sudoCall("backend-1", "mysql", "-e", "SET GLOBAL slow_query_log = 'OFF';"),
            sudoCall("backend-1", "mysql", "-e", "START SLAVE;"),
            sudoCall("backend-1", "mysql", "-e", "SET GLOBAL slow_query_log = 'ON';"),
            sudoCall("backend-1", "mysql", "-e", "show slave status\\G"),
        ]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "mysql.reset_slave"],
        setup: { try $0.behave("backend-1", "mysql", stdout: slaveStatus) },
        calls: [
            sudoCall("backend-1", "mysql", "-e", "SHOW SLAVE STATUS\\G"),
            sudoCall("backend-1", "mysql", "-e", "STOP SLAVE;"),
            sudoCall("backend-1", "mysql", "-e", "SHOW SLAVE STATUS\\G"),
            sudoCall("backend-1", "mysql", "-e", "SHOW SLAVE STATUS\\G"),
            sudoCall("backend-1", "mysql", "-e", "RESET SLAVE;"),
            sudoCall(
                "backend-1", "mysql", "-e", "CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000042', MASTER_LOG_POS=1234;"),
            sudoCall("backend-1", "mysql", "-e", "START SLAVE;"),
            sudoCall("backend-1", "mysql", "-e", "SHOW SLAVE STATUS\\G"),
        ]),
    // rabbitmq
    CatalogueCase(
        arguments: ["-H", "backend-1", "rabbitmq.status"],
        calls: [sudoCall("backend-1", "rabbitmqctl", "cluster_status")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "rabbitmq.safe_reboot"],
        setup: {
            try $0.behave("backend-1", "rabbitmqctl", stdout: rabbitHealthy)
            try $0.behave("backend-1", "check_reboot_required", exit: 1)
        },
        calls: [
            sudoCall("backend-1", "rabbitmqctl", "cluster_status"),
            plainCall("backend-1", "check_reboot_required", "30", "0"),
            sudoCall("backend-1", "shutdown", "-r", "now"),
        ],
        verify: { expectDowntime($0, for: "backend-1") }),
    // elasticsearch
    CatalogueCase(
        arguments: ["-H", "backend-1", "elasticsearch.delete:govuk-2020"],
        calls: [plainCall("backend-1", "curl", "-XDELETE", "http://elasticsearch6:80/govuk-2020")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "elasticsearch.delete:../govuk"], status: 2, output: ["must match [^/]+"]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "elasticsearch.status:govuk"],
        calls: [plainCall("backend-1", "curl", "-XGET", "http://elasticsearch6:80/govuk/_status")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "elasticsearch.cluster_health"],
        calls: [plainCall("backend-1", "curl", "-XGET", "http://elasticsearch6:80/_cluster/health?pretty")]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "elasticsearch.check_recovery:govuk,http://es7:9200"],
        calls: [plainCall("backend-1", "curl", "-XGET", "http://es7:9200/govuk/_recovery")]),
    // ntp
    CatalogueCase(
        arguments: ["-H", "backend-1", "ntp.status"], setup: { try $0.behave("backend-1", "check_ntp_time", exit: 1) },
        calls: [
            plainCall("backend-1", "ntpq", "-p"),
            plainCall("backend-1", "check_ntp_time", "-q", "-H", "ntp.ubuntu.com", "-w", "2", "-c", "3"),
        ],
        output: ["NTP time check not OK"]),
    CatalogueCase(
        arguments: ["-H", "backend-1", "ntp.resync"],
        calls: [
            sudoCall("backend-1", "service", "ntp", "stop"), sudoCall("backend-1", "ntpdate", "-B", "ntp.ubuntu.com"),
            sudoCall("backend-1", "service", "ntp", "start"),
        ]),
]

@Suite(
    "fabric-scripts catalogue on the test fleet", .serialized,
    .enabled(if: TestFleet.isSupported && FileManager.default.isExecutableFile(atPath: FabRun.binary)))
struct CatalogueTests {
    /// Runs one case and checks its exit status, output and every stub call on every host.
    static func check(_ testCase: CatalogueCase) async throws {
        let fleet = try sharedCatalogueFleet.get()
        try fleet.reset()
        try testCase.setup(fleet)
        let run = try await fleet.fab(testCase.arguments)
        #expect(run.status == testCase.status, "\(run)")
        for text in testCase.output where !text.isEmpty {
            #expect((run.stdout + run.stderr).contains(text), "missing \(text.debugDescription) in \(run)")
        }
        let actual = try fleet.calls()
        let hosts = Set(actual.keys).union(testCase.calls.map(\.host))
        for host in hosts.sorted() {
            let got = actual[host] ?? []
            let wanted = testCase.calls.filter { $0.host == host }
            let matches =
                got.count == wanted.count && zip(got, wanted).allSatisfy { $1.matches($0, user: fleet.fleet.user) }
            #expect(
                matches,
                "\(host): ran\n  \(got.map(\.description).joined(separator: "\n  "))\nwanted\n  \(wanted.map(\.description).joined(separator: "\n  "))"
            )
        }
        try testCase.verify(fleet)
    }

    @Test("each catalogue task runs exactly its host commands", arguments: catalogueCases)
    func task(_ testCase: CatalogueCase) async throws {
        try await Self.check(testCase)
    }
}
