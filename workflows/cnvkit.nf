/*
 * The stages of one request: checks, regions, coverage per sample, reference, calls per
 * experimental sample, the cohort (sex, SEG, metrics, heatmap, report). Each CNVkit stage runs
 * its substeps in one interpreter and writes its outputs where they are published. A job that
 * reuses a reference built earlier takes its regions from it and builds none; a reference-only
 * job (no experimental samples) ends with the reference. With reference_mode leave-one-out each
 * sample gets its own reference, pooled from all the others. A sample's facts (sex, purity,
 * ploidy, VCF, matched normal) become the options of the CNVkit commands that take them
 * (sampleFacts below). The assay (params.method, issue 25) is `cnvkit.py batch -m`'s: hybrid
 * (targets and antitargets), amplicon (targets only, no access) or wgs (bins over the BED or
 * the accessible regions, no antitargets); amplicon and wgs build and apply the reference
 * without edge correction, wgs segments with batch's -t 1e-6. The regions stage writes
 * reference/bin_sizes.json (the bin sizes, where they came from, warnings), which the
 * reference record and report.html take.
 */
include { CHECK_INPUTS     } from '../modules/local/check_inputs'
include { SAMTOOLS_FAIDX   } from '../modules/samtools/faidx'
include { SAMTOOLS_INDEX   } from '../modules/samtools/index'
include { CNVKIT_PREPARE   } from '../modules/cnvkit/prepare'
include { COVERAGE         } from '../subworkflows/local/coverage'
include { CNVKIT_REFERENCE } from '../modules/cnvkit/reference'
include { CNVKIT_PANEL     } from '../modules/cnvkit/panel'
include { CNVKIT_SAMPLE    } from '../modules/cnvkit/sample'
include { CNVKIT_COHORT    } from '../modules/cnvkit/cohort'
include { RESULT_MANIFEST  } from '../modules/local/result_manifest'
include { taskCpus; groupCpus; grouped } from '../subworkflows/local/cpus'

// The index the input check chose for a BAM or CRAM (a suffix of its path without its own:
// `.bam.bai`, `.bai`, `.cram.crai`, `.crai`), or null when it must be built (CNVkit would
// otherwise rebuild a stale one through its staged link).
def bamIndex(bam, suffix) {
    return suffix ? file(bam.toString().replaceFirst(/\.[^.\/]+$/, '') + suffix) : null
}

// A JSON document (text, or a value read from one, such as a params file's) as plain maps and
// lists: JsonSlurper's lazy maps build themselves on first reading, which is not safe when
// several tasks read one at once (a task's hash then saw a half-built map).
def plain(json) {
    return new groovy.json.JsonSlurperClassic().parseText(json instanceof CharSequence ? json.toString() : groovy.json.JsonOutput.toJson(json))
}

// The one sex all these samples were given, or null when one of them has none or they differ:
// then CNVkit guesses each sample's sex itself.
def sharedSex(metas) {
    def given = metas.collect { meta -> meta.sex }.unique()
    return given.size() == 1 ? given[0] : null
}

// Controls before tumours, then by name: the local executor starts ready tasks in the order
// they were made, and the pooled reference needs only the controls' coverage (it then runs
// beside the tumours'), so their indexes and coverage are made first.
def controlsFirst(a, b) {
    return (a.role == 'control' ? 0 : 1) <=> (b.role == 'control' ? 0 : 1) ?: a.id <=> b.id
}

// Whether a sample's coverage is needed: every sample's but a matched normal's when
// pool_matched_normals is false (it is then only its tumour's normal column in the VCF).
def covered(meta, metas) {
    return params.pool_matched_normals || !(meta.id in metas*.normal)
}

// A sample's facts as CNVkit options: `sex` (-x SEX, for genemetrics), `variants` (-v VCF
// -i ITS_COLUMN [-n ITS_NORMAL'S_COLUMN], for scatter) and `call` (those and --purity,
// --ploidy, appended to call_conf: argparse's last value wins, so the sample's own override
// the cohort's); `columns`, the VCF columns these name. A normal's column is its vcf_sample,
// else its id; `vcf` is where the sample's task finds its VCF (default: its name). Every word
// is a name or a number the schema's patterns and types allow: nothing here reaches a shell
// unchecked.
def sampleFacts(meta, metas, vcf = null) {
    def sex = meta.sex ? "-x ${meta.sex}" : ''
    def normal = metas.find { other -> other.id == meta.normal }
    def columns = meta.vcf ? [meta.vcf_sample ?: meta.id] + (normal ? [normal.vcf_sample ?: normal.id] : []) : []
    def variants = columns ? "-v ${vcf ?: meta.vcf.name} -i ${columns[0]}" + (normal ? " -n ${columns[1]}" : '') : ''
    def call = [sex, meta.purity != null ? "--purity ${meta.purity}" : '',
                meta.ploidy != null ? "--ploidy ${meta.ploidy}" : '', variants]
    return [sex: sex, variants: variants, call: call.findAll().join(' '), columns: columns]
}

// The input of a CNVKIT_SAMPLE task of `rows`, each [meta, target .cnn, antitarget .cnn,
// reference, VCF or [], every sample's meta]: lists in the rows' order, each reference and VCF
// once (staged as referenceN/NAME and vcfN/NAME, N its place), each row's facts with the staged
// path of its reference and VCF.
def sampleTask(rows) {
    def refs = rows.collect { row -> row[3] }.unique()
    def vcfs = rows.findAll { row -> row[4] }.collect { row -> row[4] }.unique()
    def facts = rows.collect { meta, _target, _antitarget, cnn, vcf, all ->
        def staged = vcf ? "vcf${vcfs.indexOf(vcf) + 1}/${vcf.name}" : null
        sampleFacts(meta, all, staged) + [reference: "reference${refs.indexOf(cnn) + 1}/${cnn.name}"]
    }
    return [rows*.getAt(0), rows*.getAt(1), rows*.getAt(2), refs, vcfs, facts]
}

// Where a task's output is published: its path below the task's folder (<workDir>/ab/cdef...),
// which publishDir keeps below output_dir.
def resultPath(f) {
    def inWork = workflow.workDir.relativize(f)
    return inWork.subpath(2, inWork.nameCount).toString()
}

workflow CNVKIT {
    take:
    samples     // channel: [ meta (id, role: experimental|control, sex, purity, ploidy, vcf
                //   (a file), vcf_sample, normal: null when not given), BAM or CRAM ]
    fasta       // path: reference FASTA
    bed         // path: target BED or Picard interval list; [] for a wgs job without one
    annotation  // path or []: gene annotation (GFF3, GTF, refFlat or BED)
    reused      // [reference.cnn, its record if any] built earlier, or [] to build one
    access_bed  // path or []: a precomputed access BED, used instead of running access
    excludes    // [paths]: exclusion BEDs of access (access -x FILE each), or []
    conf        // map: the request's option strings as given, {FIELD: ARGS}
    outdir      // string: where pipeline_info/versions.yml goes

    main:
    ordered = samples.toSortedList { a, b -> controlsFirst(a[0], b[0]) }.flatMap()

    // Nothing else starts before every input and option string passed its checks. The check
    // also decides which indexes are used as they are and which are built, and re-quotes each
    // option string CNVkit's parsers accepted, its -p apart (bin/check_inputs.py); when the
    // launcher checked, it passes its check's results (params.indexes, params.checked_options).
    names_bams = ordered
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { rows -> [rows.collect { row -> row[0].id }, rows.collect { row -> row[1] }] }
    metas = ordered.map { meta, _bam -> meta }.toSortedList { a, b -> a.id <=> b.id }
    fai = file("${fasta}.fai")
    if (params.inputs_checked) {  // the launcher checked them: not again
        checked = channel.value('checked by the launcher')
        indexes = channel.value(plain(params.indexes))
        options = channel.value(plain(params.checked_options))
    } else {
        // The rows (for the rules across them) when the request gave them, and each VCF once
        // with the samples that read it and the columns they need.
        rows = params.samples || params.samplesheet ?
            ordered.toSortedList { a, b -> a[0].id <=> b[0].id }
                .map { all -> groovy.json.JsonOutput.toJson(all.collect { meta, bam ->
                    meta + [bam: bam.toString(), vcf: meta.vcf?.toString()]
                }) }
                .collectFile(name: 'sample_rows.json') : channel.value([])
        variants = metas.map { all ->
            def readers = all.findAll { meta -> meta.vcf }
            def vcfs = readers.collect { meta -> meta.vcf }.unique()
            def columns = readers.collectEntries { meta -> [meta.id, sampleFacts(meta, all).columns] }
            [readers.collectEntries { meta -> [meta.id, vcfs.indexOf(meta.vcf)] }, columns, vcfs]
        }
        CHECK_INPUTS([fasta, fai.exists() ? fai : []], bed ?: [], annotation, access_bed, excludes,
                     names_bams, reused, conf, rows, variants)
        checked = CHECK_INPUTS.out.report
        indexes = CHECK_INPUTS.out.indexes.map { f -> plain(f.text) }.first()
        options = CHECK_INPUTS.out.options.map { f -> plain(f.text) }.first()
    }

    // Reference and BAM indexes: used or built, as the check decided.
    fasta_in = channel.of(fasta).combine(indexes).branch { _f, decided ->
        indexed: decided.fai
        missing: true
    }
    SAMTOOLS_FAIDX(fasta_in.missing.map { f, _decided -> f })
    reference_fasta = fasta_in.indexed
        .map { f, _decided -> [f, file("${f}.fai")] }
        .mix(SAMTOOLS_FAIDX.out.fasta_fai)
        .first()

    bams_in = ordered
        .combine(metas.map { all -> [all] })
        .filter { meta, _bam, all -> covered(meta, all) }
        .map { meta, bam, _all -> [meta, bam] }
        .combine(indexes).branch { meta, _bam, decided ->
        indexed: decided.bai[meta.id] != null
        missing: true
    }
    SAMTOOLS_INDEX(bams_in.missing.map { meta, bam, _decided -> [meta, bam] })
    bams = bams_in.indexed
        .map { meta, bam, decided -> [meta, bam, bamIndex(bam, decided.bai[meta.id])] }
        .mix(SAMTOOLS_INDEX.out.bam_bai)
        .toSortedList { a, b -> controlsFirst(a[0], b[0]) }  // indexes built in any order
        .flatMap()
    targets_bed = channel.value([bed ?: []]).combine(checked).map { b, _ok -> b }

    // The BAMs (with their indexes) CNVkit's autobin reads, only when a bin size's source is
    // "autobin" (the checked options' plan): the controls', else the tumours'. Other jobs do
    // not wait for the BAMs' indexes to make their regions.
    autobins = options.map { o -> !reused && ['target_conf', 'antitarget_conf'].any { f -> o[f]?.size_from == 'autobin' } }
    autobin_bams = autobins.filter { wanted -> !wanted }.map { _wanted -> [] }
        .mix(
            autobins.filter { wanted -> wanted }
                .combine(bams.map { meta, bam, bai -> [meta.role, bam, bai] }.toList().map { all -> [all] })
                .map { _wanted, all ->
                    def controls = all.findAll { row -> row[0] == 'control' }
                    (controls ?: all).collectMany { row -> row[1, 2] }
                }
        )

    CNVKIT_PREPARE(reference_fasta, targets_bed, annotation, reused, access_bed, excludes, autobin_bams, options)
    targets = CNVKIT_PREPARE.out.targets.first()
    antitargets = CNVKIT_PREPARE.out.antitargets.first()

    // With a reference built earlier the coverage tasks take its bins themselves: they start
    // without waiting for CNVKIT_PREPARE.
    covered_count = metas.map { all -> all.count { meta -> covered(meta, all) } }
    control_count = metas.map { all -> all.count { meta -> meta.role == 'control' && covered(meta, all) } }
    if (reused) {
        COVERAGE(bams, reference_fasta, [], [], reused[0], options, covered_count)
    } else {
        COVERAGE(bams, reference_fasta, targets, antitargets, [], options, covered_count)
    }
    coverage = COVERAGE.out.cnn

    // The reference each tumour is called against: the one reused; or pooled from the controls
    // (flat when there are none; -x when they were all given one sex); or, leave-one-out,
    // pooled for each sample from all the others' coverage. Coverages in the order of their
    // file names, as the seed's reference was built. The pooled reference starts once the
    // controls' coverage exists (their number is known from the samples), beside the tumours'.
    experimental_cnn = coverage.filter { meta, _target, _antitarget -> meta.role == 'experimental' }
    if (reused) {
        references = experimental_cnn.combine(CNVKIT_PREPARE.out.reference.first())
            .map { meta, _target, _antitarget, cnn -> [meta.id, cnn] }
        reference_files = CNVKIT_PREPARE.out.reference.mix(CNVKIT_PREPARE.out.record)
        reference_versions = channel.empty()
        controls_metrics = channel.empty()
    } else {
        // Every control's coverage once the last exists: [metas, targets, antitargets] by id.
        control_coverage = coverage.filter { meta, _target, _antitarget -> meta.role == 'control' }
            .combine(control_count)
            .map { meta, target, antitarget, n -> [groupKey('controls', n), meta, target, antitarget] }
            .groupTuple()
            .map { _key, metas_, target, antitarget -> [metas_, target, antitarget].transpose().sort { row -> row[0].id }.transpose() }
        pools = params.reference_mode == 'leave-one-out' ?
            coverage.toSortedList { a, b -> a[0].id <=> b[0].id }.flatMap { all ->
                all.collect { row ->
                    def others = all.findAll { other -> other[0].id != row[0].id }
                    [row[0].id, others.collectMany { other -> other[1, 2] }.sort { f -> f.name },
                     sharedSex(others*.getAt(0))]
                }
            } :
            control_count
                .filter { n -> n == 0 }
                .map { _n -> [null, [], null] }  // no controls: a flat reference
                .mix(
                    control_coverage.map { metas_, target, antitarget ->
                        [null, (target + antitarget).sort { f -> f.name }, sharedSex(metas_)]
                    }
                )
        bin_sizes = CNVKIT_PREPARE.out.bin_sizes.first()
        CNVKIT_REFERENCE(pools, targets, antitargets, reference_fasta, bed, annotation, bin_sizes,
                         access_bed, excludes, options)
        built = CNVKIT_REFERENCE.out.cnn
        references = params.reference_mode == 'leave-one-out' ? built :
            experimental_cnn.combine(built).map { meta, _target, _antitarget, _id, cnn -> [meta.id, cnn] }
        reference_files = CNVKIT_REFERENCE.out.cnn.map { _id, cnn -> cnn }.mix(CNVKIT_REFERENCE.out.record)
        // The controls' panel (two or more pooled; leave-one-out takes none): each one's noise
        // against the others. It starts once the job's reference is built (never before it),
        // beside the tumours' calls, with a block per control at once on its share of the CPUs
        // (the calls have the other); the cohort reads it.
        CNVKIT_PANEL(
            control_coverage.filter { metas_, _target, _antitarget -> metas_.size() > 1 }
                .combine(built)
                .map { metas_, target, antitarget, _id, _cnn ->
                    [metas_, target, antitarget, sharedSex(metas_), taskCpus(metas_.size(), 2, metas_.size())]
                },
            options
        )
        controls_metrics = CNVKIT_PANEL.out.metrics
        reference_versions = CNVKIT_REFERENCE.out.versions.mix(CNVKIT_PANEL.out.versions)
    }

    // Each tumour's calls: a task each, or on a single machine one task for all (grouped()),
    // each tumour's segment -p its share of the machine's CPUs.
    segment_threads = options.combine(metas.map { all -> [all] }).map { o, all ->
        taskCpus(o.segment_conf.processes ?: 1, all.count { meta -> meta.role == 'experimental' }, Integer.MAX_VALUE)
    }
    called = experimental_cnn
        .map { meta, target, antitarget -> [meta.id, meta, target, antitarget] }
        .join(references)
        .combine(metas.map { all -> [all] })
        .map { _id, meta, target, antitarget, cnn, all -> [meta, target, antitarget, cnn, meta.vcf ?: [], all] }
    sample_tasks = grouped() ?
        called.toList().filter { rows -> rows }.map { rows -> sampleTask(rows) } :
        called.map { row -> sampleTask([row]) }
    CNVKIT_SAMPLE(
        sample_tasks.combine(segment_threads).map { row -> row + [groupCpus(row[-1], row[0].size())] },
        options
    )
    // [meta, its files] of each tumour; [meta, file] of its result named <id><suffix>
    sample_files = CNVKIT_SAMPLE.out.files.flatMap { tumours_, files ->
        tumours_.collect { meta -> [meta, [files].flatten().findAll { f -> f.parent.name == meta.id }] }
    }
    def result = { suffix ->
        sample_files.map { meta, files -> [meta, files.find { f -> f.name == "${meta.id}${suffix}" }] }
            .filter { _meta, f -> f }
    }

    // The cohort: every tumour's results in the order of their sample names.
    tumours = result('.cnr')
        .join(result('.cns'))
        .join(result('.call.cns'))
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .filter { rows -> rows }  // empty only when a failed check is ending the run
    target_cnn = coverage.map { _meta, target, _antitarget -> target }.toSortedList { a, b -> a.name <=> b.name }
    scatters = result('-scatter.png').map { _meta, png -> png }.toSortedList { a, b -> a.name <=> b.name }
    // Every tumour's files that `keep(id, name)` accepts, sorted by name ([] when none): its
    // chromosome and gene plots and diagram SVG, its genes of interest, its bintest.
    def of_tumours = { keep ->
        sample_files.flatMap { meta, files -> files.findAll { f -> keep("${meta.id}", f.name) } }
            .toSortedList { a, b -> a.name <=> b.name }
    }
    panels = of_tumours { id, name -> name == "${id}-diagram.svg" ||
        name.endsWith('-scatter.png') && (name.startsWith("${id}-chromosome-") || name.startsWith("${id}-gene-")) }
    genes = of_tumours { id, name -> name == "${id}.genes_of_interest.tsv" }
    bintests = of_tumours { id, name -> name == "${id}.bintest.cns" }
    // Every sample's facts and the call options each tumour was called with, for the report.
    facts = metas
        .map { all -> groovy.json.JsonOutput.toJson(all.collect { meta ->
            meta + [vcf: meta.vcf?.name, call_facts: meta.role == 'experimental' ? sampleFacts(meta, all).call : null]
        }) }
        .collectFile(name: 'samples.json')
    tumour_sex = metas.map { all -> sharedSex(all.findAll { meta -> meta.role == 'experimental' }) ?: '' }
    // What the report says of the job: from the launcher (the same on a resumed job, so the
    // cohort task stays cached), else this run's name, start and params.
    job = channel.value(groovy.json.JsonOutput.toJson([
            job: params.job ?: [run_name: workflow.runName, submitted: "${workflow.start}",
                                request: params],
            pipeline: workflow.manifest.version, nextflow: "${nextflow.version}"]))
        .collectFile(name: 'job.json')
    result_files = channel.empty()
        .mix(
            CNVKIT_PREPARE.out.access, CNVKIT_PREPARE.out.targets, CNVKIT_PREPARE.out.antitargets,
            CNVKIT_PREPARE.out.annotation, CNVKIT_PREPARE.out.bin_sizes, reference_files,
            controls_metrics,
            coverage.flatMap { _meta, target, antitarget -> [target, antitarget] },
            sample_files.flatMap { _meta, files -> files }
        )
    results = result_files
        .map { f -> resultPath(f) }
        .collectFile(name: 'results.txt', newLine: true, sort: true)
    CNVKIT_COHORT(
        target_cnn,
        tumours.map { rows -> rows.collect { row -> row[1] } },
        tumours.map { rows -> rows.collect { row -> row[2] } },
        tumours.map { rows -> rows.collect { row -> row[3] } },
        scatters,
        panels,
        genes,
        bintests,
        reference_files.filter { f -> f.name.endsWith('.cnn') }.toSortedList { a, b -> a.name <=> b.name },
        facts,
        tumour_sex,
        job,
        results,
        CNVKIT_PREPARE.out.bin_sizes.collect().ifEmpty([]),
        controls_metrics.collect().ifEmpty([]),
        options
    )

    // The manifest of everything the stages publish, made from the files themselves; main.nf
    // places it once Nextflow has published them all.
    published = result_files
        .mix(CNVKIT_COHORT.out.sex, CNVKIT_COHORT.out.seg, CNVKIT_COHORT.out.metrics,
             CNVKIT_COHORT.out.heatmap, CNVKIT_COHORT.out.multiqc, CNVKIT_COHORT.out.report)
        .map { f -> [resultPath(f), f] }
        .toSortedList { a, b -> a[0] <=> b[0] }
        .filter { rows -> rows }  // empty only when a failed check is ending the run
    RESULT_MANIFEST(
        published.map { rows -> rows.collect { row -> row[0] } },
        published.map { rows -> rows.collect { row -> row[1] } },
        job
    )

    // How many tasks this run has, for progress reports (`k/n`): every process above, once per
    // item of what it runs on.
    metas
        .map { all -> [all] }
        .combine(indexes)
        .combine(COVERAGE.out.chunks)
        .map { all, decided, pieces ->
            def rows = all.findAll { meta -> covered(meta, all) }
            def bams = rows.size()
            def experimental = rows.count { meta -> meta.role == 'experimental' }
            def unindexed = rows.count { meta -> decided.bai[meta.id] == null }
            def faidx = decided.fai ? 0 : 1
            def check = params.inputs_checked ? 0 : 1
            def pooling = reused ? 0 : params.reference_mode == 'leave-one-out' ? experimental : 1
            def panel = !reused && rows.count { meta -> meta.role == 'control' } > 1 ? 1 : 0
            def cohort = experimental ? 1 : 0
            // coverage: a task per sample, grouped a task per role; or, in chunks, per (sample,
            // chunk), the split, the merges
            def coverage = pieces ? bams * pieces + 1 + bams : grouped() ? rows*.role.unique().size() : bams
            def calling = grouped() ? cohort : experimental  // grouped: one task for all
            // check + indexes + prepare + coverage + reference + panel + sample stages + cohort + manifest
            "${check + faidx + unindexed + 1 + coverage + pooling + panel + calling + cohort + 1}"
        }
        .collectFile(name: 'tasks.txt', storeDir: "${outdir}/pipeline_info")

    // One versions file for the run: process, tool and version of every stage that ran.
    channel.empty()
        .mix(
            SAMTOOLS_FAIDX.out.versions, SAMTOOLS_INDEX.out.versions,
            params.inputs_checked ? channel.empty() : CHECK_INPUTS.out.versions,
            CNVKIT_PREPARE.out.versions, COVERAGE.out.versions,
            reference_versions, CNVKIT_SAMPLE.out.versions, CNVKIT_COHORT.out.versions
        )
        .unique()
        .map { process, tool, version -> "${process.tokenize(':').last()}:\n  ${tool}: ${version}" }
        .collectFile(name: 'versions.yml', storeDir: "${outdir}/pipeline_info", sort: true, newLine: true)

    emit:
    manifest = RESULT_MANIFEST.out.manifest  // main.nf places it once everything is published
}
