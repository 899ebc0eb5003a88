#!/usr/bin/env nextflow
/*
 * cnvkit-nf: CNVkit copy-number calling for one request (see README.md).
 *
 * The launcher (bin/cnvkit-nf) validates a request and writes these params; the pipeline checks
 * them again here, so that a direct `nextflow run` or a Tower launch gets the same guarantees:
 * every rule of nextflow_schema.json (generated from the request schema: types, patterns,
 * limits, required fields and the rules across params), each samplesheet row against its
 * schema (assets/schema_samplesheet.json), then that sample names are unique. Nothing runs when
 * a check fails (the rules across rows are CHECK_INPUTS', the first task). The result folder
 * gets its manifest last, whoever launched the run. The assay (method: hybrid, amplicon, wgs;
 * autobin; access_conf, access_exclude, access_bed; bed optional with wgs) is issue 25's:
 * see workflows/cnvkit.nf and modules/cnvkit/prepare.
 */
include { CNVKIT } from './workflows/cnvkit'

// A list param given as a list (params file) or as a comma-separated string (command line).
def asList(value) {
    if (value == null || value == '') {
        return []
    }
    return value instanceof List ? value : value.toString().tokenize(',')*.trim()
}

// A BAM's or CRAM's sample name, `Son_S2_ALL` of `Son_S2_ALL.sort.mkdup.bam`: what the input
// pattern of nextflow_schema.json captures (made from cnvkit_nf.contract.request's rule); null
// for a path the pattern refuses.
def sampleName(path, pattern) {
    def found = path.toString() =~ pattern
    return found.matches() ? found.group(1) : null
}

// Whether a value is of a JSON-schema type.
def hasType(value, type) {
    switch (type) {
        case 'string': return value instanceof CharSequence
        case 'boolean': return value instanceof Boolean
        case 'integer': return value instanceof Integer || value instanceof Long || value instanceof BigInteger
        case 'number': return value instanceof Number
        case 'array': return value instanceof List
        case 'object': return value instanceof Map
        default: return false
    }
}

// What a value breaks of one rule of nextflow_schema.json (the keywords it uses: type, pattern,
// enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, maxLength, minItems,
// maxItems, items, not; of an object, those of paramsProblems), as "name: reason" lines; the
// rule's errorMessage, when it has one, is the reason.
def ruleProblems(name, value, rule) {
    if (value == null) {
        return []
    }
    def types = rule.type instanceof List ? rule.type : [rule.type]
    if (rule.type && !types.any { type -> hasType(value, type) }) {
        def words = [string: 'a string', boolean: 'true or false', integer: 'an integer',
                     number: 'a number', array: 'a list', object: 'an object']
        return ["${name}: must be ${types.collect { type -> words[type] }.join(' or ')}, got '${value}'".toString()]
    }
    def problems = []
    def broken = { reason, got -> problems << "${name}: ${rule.errorMessage ?: reason}${got}".toString() }
    if (rule.pattern && !(value.toString() ==~ rule.pattern)) {  // the whole value (all are anchored)
        broken("must match ${rule.pattern}", ", got '${value}'")
    }
    if (rule.enum && !(value in rule.enum)) {
        broken("must be one of ${rule.enum.join(', ')}", ", got '${value}'")
    }
    if (rule.containsKey('const') && value != rule['const']) {
        broken("must be ${rule['const']}", ", got '${value}'")
    }
    if (rule.minimum != null && value instanceof Number && value < rule.minimum) {
        broken("must be at least ${rule.minimum}", ", got ${value}")
    }
    if (rule.maximum != null && value instanceof Number && value > rule.maximum) {
        broken("must be at most ${rule.maximum}", ", got ${value}")
    }
    if (rule.exclusiveMinimum != null && value instanceof Number && value <= rule.exclusiveMinimum) {
        broken("must be more than ${rule.exclusiveMinimum}", ", got ${value}")
    }
    if (rule.exclusiveMaximum != null && value instanceof Number && value >= rule.exclusiveMaximum) {
        broken("must be less than ${rule.exclusiveMaximum}", ", got ${value}")
    }
    if (rule.maxLength != null && value instanceof CharSequence && value.length() > rule.maxLength) {
        broken("must be at most ${rule.maxLength} characters long", '')
    }
    if (rule.minItems != null && value instanceof List && value.size() < rule.minItems) {
        broken("must list at least ${rule.minItems} item(s)", '')
    }
    if (rule.maxItems != null && value instanceof List && value.size() > rule.maxItems) {
        broken("must list at most ${rule.maxItems} item(s)", '')
    }
    if (rule.not != null && !ruleProblems(name, value, rule.not)) {
        broken('is not allowed here', '')
    }
    if (rule.items && value instanceof List) {
        value.eachWithIndex { item, i -> problems += ruleProblems("${name}[${i}]", item, rule.items) }
    }
    if (value instanceof Map) {
        problems += paramsProblems(rule, value) { key -> "${name}.${key}" }
    }
    return problems
}

// What the params (or an object's keys) break of an object rule of nextflow_schema.json: its
// required keys (null or '' is missing), each key's own rule, keys it does not allow
// (additionalProperties false) and its rules across keys (allOf; of an if/then/else, the `then`
// applies when the values meet the `if`, the `else` otherwise). `label` names a key in a
// problem (a param by its name, an object's key after the object's name).
def paramsProblems(rule, values, label = { name -> name }) {
    def problems = []
    rule.required.each { name ->
        if (values[name] == null || values[name] == '') {
            problems << "${label(name)}: ${rule.errorMessage ?: 'required'}".toString()
        }
    }
    rule.properties.each { name, own -> problems += ruleProblems(label(name), values[name], own) }
    if (rule.additionalProperties == false) {
        values.findAll { name, value -> value != null && !rule.properties?.containsKey(name) }
            .each { name, _value ->
                problems << "${label(name)}: is not allowed here (allowed: ${rule.properties.keySet().join(', ')})".toString()
            }
    }
    rule.allOf.each { part -> problems += paramsProblems(part, values, label) }
    if (rule['if'] != null) {
        def branch = paramsProblems(rule['if'], values) ? rule['else'] : rule['then']
        problems += branch ? paramsProblems(branch, values, label) : []
    }
    return problems
}

// Every rule of nextflow_schema.json that the params break: each group's (a list param given
// as a comma-separated string, e.g. on the command line, is read as its list).
def schemaProblems(schema) {
    def groups = schema['$defs'].values()
    def lists = groups.collectMany { group ->
        group.properties.findAll { _name, rule -> rule.type == 'array' }.keySet() as List
    }
    def values = params.collectEntries { name, value ->
        [name, name in lists && value instanceof CharSequence ? asList(value) : value]
    }
    return groups.collectMany { group -> paramsProblems(group, values) }
}

// A samplesheet's rows (CSV or TSV by its extension; a header row names the columns) as maps,
// each checked against the samplesheet schema's row rule: an empty cell is not given (null), a
// cell of a number or integer column is read as one when it is one (else the check names it).
// Returns [rows, problems], a problem as "samplesheet line N: column: reason".
def samplesheetRows(sheet, schema) {
    def rule = schema.items
    def numeric = { column, cell ->
        def types = rule.properties[column]?.type
        types = types instanceof List ? types : [types]
        if ('integer' in types && cell ==~ /[+-]?\d+/) {
            return cell.toLong()
        }
        return 'number' in types && cell.isBigDecimal() ? cell.toBigDecimal() : cell
    }
    def rows = sheet.splitCsv(header: true, sep: sheet.name.endsWith('.tsv') ? '\t' : ',')
        .collect { row -> row.collectEntries { column, cell ->
            def text = cell?.trim()
            [column, text ? numeric(column, text) : null]
        } }
    def problems = []
    rows.eachWithIndex { row, i ->
        problems += paramsProblems(rule, row) { column -> "samplesheet line ${i + 2}: ${column}" }
    }
    if (!rows) {
        problems << "samplesheet: has no rows below its header".toString()
    }
    return [rows, problems]
}

// The BAMs, one row each [id, bam, role, sex, purity, ploidy, vcf, vcf_sample, normal] (null:
// not given): from params.samples (the launcher's rows, or a params file's), else from
// params.samplesheet (its `sample` column is the id; read when its name passes its rule of
// nextflow_schema.json, `inputs.samplesheet`, which names the sheet's schema), else from the
// seed's two lists. Returns [rows, problems]; a row without an id takes its BAM's sample name.
def sampleRows(inputs) {
    def problems = []
    def rows = []
    if (params.samples) {
        rows = params.samples.collect { row -> new LinkedHashMap(row) }
    } else if (params.samplesheet) {
        def sheet = file(params.samplesheet)
        if (ruleProblems('samplesheet', params.samplesheet, inputs.samplesheet)) {
            return [[], []]  // the schema's check names the problem
        }
        if (!sheet.isFile()) {
            return [[], ["samplesheet: no such file: ${params.samplesheet}".toString()]]
        }
        def schema = new groovy.json.JsonSlurper().parse(file("${projectDir}/${inputs.samplesheet.schema}"))
        (rows, problems) = samplesheetRows(sheet, schema)
        rows.each { row -> row.id = row.remove('sample') }
    } else {
        rows = asList(params.control_inputs).collect { path -> [bam: path, role: 'control'] } +
               asList(params.experimental_inputs).collect { path -> [bam: path, role: 'experimental'] }
    }
    def keys = ['id', 'bam', 'role', 'sex', 'purity', 'ploidy', 'vcf', 'vcf_sample', 'normal']
    rows = rows.collect { row ->
        keys.collectEntries { key ->
            [key, key == 'id' ? row.id ?: sampleName(row.bam, inputs.experimental_inputs.items.pattern) : row[key]]
        }
    }
    rows.findAll { row -> row.id == null && row.bam }.each { row ->
        problems << "BAM ${row.bam}: its file name does not start with a sample name of letters, digits, _ and - (up to the first '.'): give the row an id".toString()
    }
    return [rows, problems]
}

// Sample names must be unique across all inputs (a rule the schema cannot state).
def sampleProblems(rows) {
    def names = rows.collect { row -> row.id }.findAll { name -> name != null }
    return names.countBy { name -> name }.findAll { _name, count -> count > 1 }.collect { name, _count ->
        "sample name '${name}' is given to more than one BAM: rename the files or give each row its own id".toString()
    }
}

// Place a run's manifest (made by RESULT_MANIFEST) into the result folder, after Nextflow has
// published every file (it waits for its publishing threads before calling onComplete), and
// only if each listed file is there with its size: written under another name first and
// renamed, or put whole into object storage.
def placeManifest(made, folder, session) {
    def body = new groovy.json.JsonSlurper().parse(made)
    def absent = body.files.findAll { f ->
        def published = folder.resolve(f.path)
        !published.isFile() || published.size() != f.size
    }
    if (absent) {
        error("Not complete, no manifest: ${absent.size()} result file(s) not published, e.g. ${absent[0].path}")
    }
    def target = folder.resolve('manifest.json')
    if (folder.fileSystem != java.nio.file.FileSystems.default) {
        made.copyTo(target)
        return
    }
    def partial = folder.resolve(".manifest.${session}")
    made.copyTo(partial)
    java.nio.file.Files.move(partial, target, java.nio.file.StandardCopyOption.ATOMIC_MOVE)
}

// What a direct run's work dir keeps for -resume (its files, each once), and how to drop it.
def workDirNote(work) {
    if (work.fileSystem != java.nio.file.FileSystems.default || !java.nio.file.Files.isDirectory(work)) {
        return "The work dir ${work.toUriString()} keeps the task files for -resume."
    }
    def seen = [] as Set
    long bytes = 0
    java.nio.file.Files.walk(work).withCloseable { paths ->
        paths.each { p ->
            def a = java.nio.file.Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes, java.nio.file.LinkOption.NOFOLLOW_LINKS)
            if (a.isRegularFile() && seen.add(a.fileKey())) {
                bytes += a.size()
            }
        }
    }
    return "The work dir ${work} keeps ${bytes} bytes of task files for -resume; the results do not need them: " +
        "`nextflow clean -f` (here) drops this run's, removing ${work} drops every run's."
}

workflow {
    def schema = new groovy.json.JsonSlurper().parse(file("${projectDir}/nextflow_schema.json"))
    def inputs = schema['$defs'].input_options.properties
    def (rows, rowProblems) = sampleRows(inputs)
    def problems = schemaProblems(schema) + rowProblems + sampleProblems(rows)
    if (problems) {
        error("Invalid parameters:\n  - " + problems.join('\n  - '))
    }

    // Controls first: their coverage is what the reference, and so every tumour, waits for.
    def samples = rows.findAll { row -> row.role == 'control' } + rows.findAll { row -> row.role != 'control' }
    def annotation = params.has_annotate ? file(params.annotation_file, checkIfExists: true) : []
    // A reference built earlier, then its record (x.cnn -> x.json: bin/reference_record.py's
    // rule, which nextflow_schema.json carries) when there is one.
    def reused = []
    if (params.reference_cnn) {
        def cnn = file(params.reference_cnn, checkIfExists: true)
        def where = inputs.reference_cnn['x-record']
        def record = file(cnn.toString().replaceFirst(where.pattern, where.replacement))
        reused = record.exists() ? [cnn, record] : [cnn]
    }

    // An earlier result's manifest goes first: a folder being rewritten never looks complete.
    def folder = file(params.output_dir)
    folder.resolve('manifest.json').delete()
    def made = null
    def run = workflow  // within the handler `workflow` is not this run's
    def direct = !params.job?.instance_id  // cnvkit-nf deletes a finished job's work dir itself
    def logger = log
    run.onComplete {
        if (run.success && made) {
            placeManifest(made, folder, run.sessionId)
        }
        if (direct) {
            logger.info(workDirNote(run.workDir))
        }
    }

    CNVKIT(
        channel.fromList(samples).map { row ->
            def meta = row.findAll { key, _value -> key != 'bam' }
            meta.vcf = row.vcf ? file(row.vcf, checkIfExists: true) : null
            [meta, file(row.bam, checkIfExists: true)]
        },
        file(params.ref, checkIfExists: true),
        params.bed ? file(params.bed, checkIfExists: true) : [],  // optional with method wgs
        annotation,
        reused,
        params.access_bed ? file(params.access_bed, checkIfExists: true) : [],
        asList(params.access_exclude).collect { path -> file(path, checkIfExists: true) },
        // every *_conf string: those nextflow_schema.json names, and access_conf (issue 25)
        // when given (a launcher's check from before issue 25 knows nine)
        (schema['$defs'].substep_options.properties.keySet().collectEntries { name -> [name, params[name] ?: ''] }
            + (params.access_conf ? [access_conf: params.access_conf] : [:])),
        params.output_dir
    )
    CNVKIT.out.manifest.subscribe { f -> made = f }
}
