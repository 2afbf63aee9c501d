import Replay
import ReplayMetrics

/// `--input-raw` and its settings, kept for the live-capture input factory.
public struct RawInputFlags: Sendable, Equatable {
    /// `--input-raw` addresses (`:80`, `eth0:80`, `file.pcap`), with limits.
    public var addresses: [LimitedAddress] = []
    public var trackResponse = false
    public var expire: Duration = .seconds(2)
    public var bpfFilter: String?
    public var snaplen: Int?
    public var bufferSize: Int?
    public var overrideSnaplen = false
    public var engine = "libpcap"
    public var realIPHeader: String?
    public var allowIncomplete = false
    public var protocolName = "http"
    public var promiscuous = false
    public var timestampType: String?
    public var bufferTimeout: Duration?
    public var ignoredInterfaces: [String] = []
    /// The `--output-http` targets, so capture never records its own replays.
    public var replayTargets: [String] = []

    public init() {}
}

/// Everything the command line says, before anything is opened.
public struct GoReplayOptions: Sendable {
    // Inputs.
    public var inputFiles: [LimitedAddress] = []
    public var inputFileLoop = false
    public var inputFileMaxWait: Duration?
    public var inputFileReadDepth = 100
    public var inputFileDryRun = false
    public var raw = RawInputFlags()
    public var inputDummy: [String] = []

    // Outputs.
    public var outputHTTP: [LimitedAddress] = []
    public var http = HTTPOutputOptions()
    public var outputHTTPStats = false
    public var outputHTTPStatsInterval: Duration = .milliseconds(5000)
    public var outputFiles: [LimitedAddress] = []
    public var file = FileOutputOptions()
    public var outputStdout = false
    public var outputNull = false
    public var splitOutput = false

    // Filters and rewrites.
    public var modifier = HTTPModifierConfig()

    // Global.
    public var stats = false
    public var exitAfter: Duration?
    public var verbose = 0
    public var copyBufferSize: Int? = 5 * 1024 * 1024
    /// `--metrics`: where to serve Prometheus metrics.
    public var metricsAddress: MetricsAddress?

    // Middleware and distributed mode.
    public var middleware: String?
    public var middlewareOptions = MiddlewareOptions()
    public var inputTCP: [LimitedAddress] = []
    public var tcpInput = TCPInputOptions()
    public var outputTCP: [LimitedAddress] = []
    public var tcpOutput = TCPOutputOptions()

    public init() {}

    public var inputCount: Int { inputFiles.count + raw.addresses.count + inputDummy.count + inputTCP.count }
    public var outputCount: Int {
        outputHTTP.count + outputFiles.count + (outputStdout ? 1 : 0) + (outputNull ? 1 : 0) + outputTCP.count
    }
}
