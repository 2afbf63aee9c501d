import Replay
import ReplayMetrics

/// Every flag `goreplay` accepts, in help order.
enum FlagTable {
    static let byName: [String: FlagSpec] = Dictionary(
        all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

    private static func bool(
        _ name: String, _ section: String, _ help: String, aliasOf: String? = nil,
        _ set: @escaping @Sendable (inout GoReplayOptions, Bool) throws -> Void
    ) -> FlagSpec {
        FlagSpec(name: name, kind: .bool, valueName: "", help: help, section: section, aliasOf: aliasOf) {
            options, text in
            try set(&options, try FlagValues.bool(text))
        }
    }

    private static func value(
        _ name: String, _ valueName: String, _ section: String, _ help: String, aliasOf: String? = nil,
        _ set: @escaping @Sendable (inout GoReplayOptions, String) throws -> Void
    ) -> FlagSpec {
        FlagSpec(
            name: name, kind: .value, valueName: valueName, help: help, section: section, aliasOf: aliasOf, apply: set)
    }

    static let input = "Inputs"
    static let raw = "Live capture (--input-raw; needs the capture build)"
    static let httpOut = "HTTP output"
    static let fileOut = "File and other outputs"
    static let filters = "Filters and rewrites (requests only; their responses follow)"
    static let global = "General"
    static let distributed = "Middleware and distributed mode (--input-tcp/--output-tcp)"

    // Filter flag bodies, shared with their 0.16 aliases.
    private static let allowMethod: @Sendable (inout GoReplayOptions, String) throws -> Void = {
        $0.modifier.allowMethods.append($1)
    }
    private static let allowURL: @Sendable (inout GoReplayOptions, String) throws -> Void = {
        $0.modifier.allowURLs.append(try RegexPattern($1))
    }
    private static let allowHeader: @Sendable (inout GoReplayOptions, String) throws -> Void = {
        $0.modifier.allowHeaders.append(try HTTPModifierConfig.headerPattern($1))
    }
    private static let setHeader: @Sendable (inout GoReplayOptions, String) throws -> Void = {
        let (name, value) = try HTTPModifierConfig.splitHeaderRule($1)
        $0.modifier.setHeaders.append((name, value))
    }
    private static let rewriteURL: @Sendable (inout GoReplayOptions, String) throws -> Void = {
        let (pattern, template) = try HTTPModifierConfig.rewriteURLRule($1)
        $0.modifier.rewriteURLs.append((pattern, template))
    }
    private static let headerLimiter: @Sendable (inout GoReplayOptions, String) throws -> Void = {
        let (name, percent) = try HTTPModifierConfig.limiterRule($1, separator: ":")
        $0.modifier.headerLimiters.append((name, percent))
    }

    static let all: [FlagSpec] = [
        // Inputs.
        value(
            "input-file", "PATH[|N%]", input,
            "Replay a .gor (or .gor.gz) file or glob (repeatable). |200% = twice as fast."
        ) {
            $0.inputFiles.append(try FlagValues.address($1))
        },
        bool("input-file-loop", input, "Start the input files again when they end.") { $0.inputFileLoop = $1 },
        value("input-file-max-wait", "DURATION", input, "Longest pause between two recorded requests.") {
            $0.inputFileMaxWait = try FlagValues.duration($1)
        },
        value("input-file-read-depth", "N", input, "Records read ahead and replayed in timestamp order (100; 0 = 1).") {
            $0.inputFileReadDepth = try FlagValues.int($1, maximum: 1_000_000)
        },
        bool("input-file-dry-run", input, "Count the records and their time span, replay nothing.") {
            $0.inputFileDryRun = $1
        },
        value("input-dummy", "X", input, "Emit a GET / request every second (repeatable; value ignored).") {
            $0.inputDummy.append($1)
        },
        // Live capture.
        value("input-raw", "[HOST|IFACE]:PORT", raw, "Capture HTTP traffic on a port (repeatable).") {
            $0.raw.addresses.append(try FlagValues.address($1))
        },
        bool("input-raw-track-response", raw, "Also capture responses (type 2).") { $0.raw.trackResponse = $1 },
        value("input-raw-expire", "DURATION", raw, "Give up on an incomplete message after this long (2s).") {
            $0.raw.expire = try FlagValues.duration($1)
        },
        value("input-raw-bpf-filter", "EXPR", raw, "BPF filter instead of the generated one.") {
            $0.raw.bpfFilter = $1
        },
        value("input-raw-snaplen", "SIZE", raw, "Bytes captured per packet.") {
            $0.raw.snaplen = Int(try FlagValues.size($1, maximum: 1 << 30))
        },
        value("input-raw-buffer-size", "SIZE", raw, "Kernel capture buffer size.") {
            $0.raw.bufferSize = Int(try FlagValues.size($1, maximum: 1 << 31 - 1))
        },
        bool("input-raw-override-snaplen", raw, "Capture whole 64 KiB packets (GRO/TSO).") {
            $0.raw.overrideSnaplen = $1
        },
        value("input-raw-engine", "NAME", raw, "libpcap (default), raw_socket, af_packet, pcap_file.") {
            $0.raw.engine = $1
        },
        value("input-raw-realip-header", "NAME", raw, "Add NAME: <client IP> to captured requests.") {
            $0.raw.realIPHeader = $1
        },
        bool("input-raw-allow-incomplete", raw, "Emit messages that expired with missing packets.") {
            $0.raw.allowIncomplete = $1
        },
        value("input-raw-protocol", "NAME", raw, "http only (GoReplay's binary mode is refused).") {
            guard $1 == "http" else {
                throw FlagValueError.reason(
                    "only http is replayed; GoReplay's binary protocol mode is not supported here")
            }
            $0.raw.protocolName = $1
        },
        bool("input-raw-promisc", raw, "Refused: capture sees this host's own traffic only.") {
            guard !$1 else {
                throw FlagValueError.reason(
                    "promiscuous capture is not supported; capture sees this host's own traffic only")
            }
            $0.raw.promiscuous = false
        },
        value("input-raw-timestamp-type", "TYPE", raw, "pcap timestamp type, or go for the wall clock.") {
            $0.raw.timestampType = $1
        },
        value("input-raw-buffer-timeout", "DURATION", raw, "pcap read timeout.") {
            $0.raw.bufferTimeout = try FlagValues.duration($1)
        },
        value("input-raw-ignore-interface", "NAME", raw, "Skip this interface (repeatable).") {
            $0.raw.ignoredInterfaces.append($1)
        },
        // HTTP output.
        value(
            "output-http", "URL[|N|N%]", httpOut,
            "Replay requests to URL (repeatable). A path in URL replaces the request's."
        ) {
            let address = try FlagValues.address($1)
            _ = try HTTPTarget(parsing: address.address)
            $0.outputHTTP.append(address)
        },
        value(
            "output-http-workers", "N", httpOut,
            "Most connections per target; they open with demand (0 = up to \(HTTPOutputOptions.defaultWorkerCap))."
        ) {
            $0.http.workers = try FlagValues.int($1, maximum: HTTPOutputOptions.maximumWorkers)
        },
        value("output-http-workers-min", "N", httpOut, "Connections kept open however idle (1).") {
            $0.http.workersMin = max(1, try FlagValues.int($1, maximum: 1000))
        },
        value(
            "output-http-worker-timeout", "DURATION", httpOut,
            "Close a connection above the minimum after this long idle (2s)."
        ) {
            $0.http.workerTimeout = try FlagValues.duration($1)
        },
        value(
            "output-http-queue-len", "N", httpOut,
            "Requests waiting when all connections are busy; more are dropped and counted (1000)."
        ) {
            $0.http.queueLength = try FlagValues.int($1, maximum: 10_000_000)
        },
        value("output-http-timeout", "DURATION", httpOut, "Time limit of one exchange, connect included (5s).") {
            $0.http.timeout = try FlagValues.duration($1)
            if $0.http.timeout < .milliseconds(100) { $0.http.timeout = .seconds(1) }
        },
        bool("output-http-track-response", httpOut, "Pass replayed responses (type 3) to the other outputs.") {
            $0.http.trackResponses = $1
        },
        bool("output-http-skip-verify", httpOut, "Do not verify the target's TLS certificate.") {
            $0.http.skipVerify = $1
        },
        bool("output-http-stats", httpOut, "With --stats, print per-target queue and progress lines.") {
            $0.outputHTTPStats = $1
        },
        value("output-http-stats-ms", "MS", httpOut, "Interval of --output-http-stats lines (5000).") {
            $0.outputHTTPStatsInterval = .milliseconds(try FlagValues.int($1, minimum: 1, maximum: 86_400_000))
        },
        value("output-http-redirects", "N", httpOut, "0 only: redirects are never followed (GoReplay's default).") {
            guard try FlagValues.int($1) == 0 else {
                throw FlagValueError.reason(
                    "following redirects is not supported; redirects are replayed as responses (use 0)")
            }
        },
        value(
            "output-http-response-buffer", "SIZE", httpOut,
            "Bytes of each tracked response kept (default 100kb); the rest is discarded."
        ) {
            let size = try FlagValues.size($1, maximum: 1 << 30)
            guard size > 0 else { throw FlagValueError.reason("expected a size from 1 byte to 1gb") }
            $0.http.responseBufferSize = Int(size)
        },
        bool("http-original-host", httpOut, "Keep the captured Host header (default: the target's).") {
            $0.http.originalHost = $1
        },
        // File and other outputs.
        value(
            "output-file", "PATH[|N|N%]", fileOut,
            "Append records to a .gor file, gzip if PATH ends in .gz (repeatable). %Y%m%d%H%M%S, %NS, %t, %r, %i in PATH."
        ) {
            $0.outputFiles.append(try FlagValues.address($1))
        },
        bool("output-file-append", fileOut, "One file per name, no _0/_1 chunks.") { $0.file.append = $1 },
        value("output-file-size-limit", "SIZE", fileOut, "Start a new chunk at this size (32mb; 0 = none).") {
            $0.file.sizeLimit = try FlagValues.size($1)
        },
        value("output-file-queue-limit", "N", fileOut, "Start a new chunk after N records (256; 0 = none).") {
            $0.file.queueLimit = try FlagValues.int($1, maximum: 1 << 30)
        },
        value("output-file-max-size-limit", "SIZE", fileOut, "Stop writing after this many bytes in all (1tb).") {
            $0.file.maxTotalSize = try FlagValues.size($1)
        },
        value("output-file-flush-interval", "DURATION", fileOut, "Write buffered records out this often (1s).") {
            $0.file.flushInterval = try FlagValues.duration($1)
        },
        bool("output-stdout", fileOut, "Write records to stdout (.gor framing).") { $0.outputStdout = $1 },
        bool("output-null", fileOut, "Discard everything (for measuring).") { $0.outputNull = $1 },
        bool("split-output", fileOut, "Send each message to one output, round robin, instead of to all.") {
            $0.splitOutput = $1
        },
        // Filters and rewrites.
        value("http-allow-method", "METHOD", filters, "Only these methods, exact (repeatable).", allowMethod),
        value(
            "http-allow-url", "REGEX", filters, "Only requests whose target (path?query) matches (repeatable: any).",
            allowURL),
        value("http-disallow-url", "REGEX", filters, "Drop requests whose target matches (repeatable).") {
            $0.modifier.disallowURLs.append(try RegexPattern($1))
        },
        value(
            "http-allow-header", "'NAME: REGEX'", filters, "Only requests with a matching header (repeatable: all).",
            allowHeader),
        value("http-disallow-header", "'NAME: REGEX'", filters, "Drop requests with a matching header (repeatable).") {
            $0.modifier.disallowHeaders.append(try HTTPModifierConfig.headerPattern($1))
        },
        value("http-basic-auth-filter", "REGEX", filters, "Only Basic-auth requests whose user:pass matches.") {
            $0.modifier.basicAuthFilters.append(try RegexPattern($1))
        },
        value(
            "http-header-limiter", "'NAME: N%'", filters, "Keep N% of requests, consistently by header value.",
            headerLimiter),
        value("http-param-limiter", "'NAME: N%'", filters, "Keep N% of requests, consistently by query parameter.") {
            let (name, percent) = try HTTPModifierConfig.limiterRule($1, separator: ":")
            $0.modifier.paramLimiters.append((name, percent))
        },
        value("http-set-header", "'NAME: VALUE'", filters, "Set a header; 'NAME:' blanks it (repeatable).", setHeader),
        value("http-set-param", "NAME=VALUE", filters, "Set a query parameter (repeatable).") {
            let (name, value) = try HTTPModifierConfig.paramRule($1)
            $0.modifier.setParams.append((name, value))
        },
        value(
            "http-rewrite-url", "REGEX:TARGET", filters,
            "Rewrite the target with the first matching rule; $1 for groups.", rewriteURL),
        value("http-rewrite-header", "'NAME: REGEX,TARGET'", filters, "Rewrite a header value (repeatable).") {
            let (name, pattern, template) = try HTTPModifierConfig.rewriteHeaderRule($1)
            $0.modifier.rewriteHeaders.append((name, pattern, template))
        },
        // General.
        bool("stats", global, "Enable periodic statistics (see --output-http-stats).") { $0.stats = $1 },
        value("exit-after", "DURATION", global, "Stop after this long (exit 0).") {
            $0.exitAfter = try FlagValues.duration($1)
        },
        value(
            "metrics", "ADDR", global,
            "Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; :PORT = all interfaces)."
        ) {
            $0.metricsAddress = try MetricsAddress(parsing: $1)
        },
        FlagSpec(
            name: "verbose", kind: .bool, valueName: "", help: "Debug output; --verbose=N sets the level (0-3).",
            section: global, aliasOf: nil
        ) {
            options, text in
            if let level = Int(text) {
                guard (0...3).contains(level) else { throw FlagValueError.reason("expected a level from 0 to 3") }
                options.verbose = level
            } else {
                options.verbose = try FlagValues.bool(text) ? max(options.verbose, 1) : 0
            }
        },
        bool("debug", global, "Same as --verbose 1 (GoReplay 0.16).") { $0.verbose = $1 ? max($0.verbose, 1) : 0 },
        value("copy-buffer-size", "SIZE", global, "Cut payloads to this size (5mb).") {
            $0.copyBufferSize = Int(try FlagValues.size($1))
        },
        // Middleware and distributed mode.
        value(
            "middleware", "CMD", distributed,
            "Pass every message through CMD (run with /bin/sh -c): hex lines on its stdin and stdout."
        ) {
            guard !$1.allSatisfy({ $0 == " " }) else { throw FlagValueError.reason("expected a command") }
            $0.middleware = $1
        },
        value(
            "middleware-timeout", "DURATION", distributed,
            "A middleware silent this long with messages waiting, or still running this long after its input closed, is killed (5s)."
        ) {
            let timeout = try FlagValues.duration($1)
            guard timeout >= .milliseconds(100) else { throw FlagValueError.reason("expected at least 100ms") }
            $0.middlewareOptions.stallTimeout = timeout
            $0.middlewareOptions.exitGrace = timeout
        },
        value(
            "input-tcp", "[HOST]:PORT", distributed, "Receive records from other goreplays' --output-tcp (repeatable)."
        ) {
            let address = try FlagValues.address($1)
            _ = try TCPAddress(parsing: address.address)
            $0.inputTCP.append(address)
        },
        bool("input-tcp-secure", distributed, "TLS on --input-tcp (needs the two flags below).") {
            $0.tcpInput.secure = $1
        },
        value("input-tcp-certificate", "PATH", distributed, "PEM certificate for --input-tcp-secure.") {
            $0.tcpInput.certificatePath = $1
        },
        value("input-tcp-certificate-key", "PATH", distributed, "PEM private key for --input-tcp-secure.") {
            $0.tcpInput.keyPath = $1
        },
        value(
            "output-tcp", "HOST:PORT[|N|N%]", distributed,
            "Forward requests and original responses to a replayer's --input-tcp (repeatable)."
        ) {
            let address = try FlagValues.address($1)
            let parsed = try TCPAddress(parsing: address.address)
            guard !parsed.host.isEmpty else { throw FlagValueError.reason("expected HOST:PORT with a host") }
            $0.outputTCP.append(address)
        },
        value("output-tcp-workers", "N", distributed, "Connections per --output-tcp (10).") {
            let workers = try FlagValues.int($1, minimum: 1)
            guard workers <= 1000 else { throw FlagValueError.reason("expected at most 1000 connections") }
            $0.tcpOutput.workers = workers
        },
        bool("output-tcp-sticky", distributed, "Send a request and its responses over the same connection.") {
            $0.tcpOutput.sticky = $1
        },
        bool("output-tcp-secure", distributed, "TLS to the replayer, verifying its certificate.") {
            $0.tcpOutput.secure = $1
        },
        bool(
            "output-tcp-skip-verify", distributed,
            "TLS without verifying the replayer's certificate (implies --output-tcp-secure)."
        ) {
            $0.tcpOutput.skipVerify = $1
        },
        value(
            "output-tcp-ca-certificate", "PATH", distributed,
            "Trust this PEM CA for --output-tcp-secure instead of the system's (implies it)."
        ) {
            $0.tcpOutput.caCertificatePath = $1
        },
        bool("output-tcp-stats", distributed, "Accepted for compatibility; --stats covers TCP outputs.") { _ = $1 },
        // GoReplay 0.16 spellings.
        // A value flag in GoReplay (any value adds a stdout output).
        value("output-dummy", "", fileOut, "", aliasOf: "output-stdout") { options, _ in options.outputStdout = true },
        value("output-http-header", "", filters, "", aliasOf: "http-set-header", setHeader),
        value("output-http-header-filter", "", filters, "", aliasOf: "http-allow-header", allowHeader),
        value("output-http-header-hash-filter", "", filters, "", aliasOf: "http-header-limiter", headerLimiter),
        value("output-http-method", "", filters, "", aliasOf: "http-allow-method", allowMethod),
        value("output-http-rewrite-url", "", filters, "", aliasOf: "http-rewrite-url", rewriteURL),
        value("output-http-url-regexp", "", filters, "", aliasOf: "http-allow-url", allowURL),
    ]
}
