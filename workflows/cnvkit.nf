/*
 * The order of CNVkit's substeps for one request: checks, reference build, per-sample calls.
 */
include { CHECK_INPUTS       } from '../modules/local/check_inputs'
include { ANNOTATION_TO_BED  } from '../modules/local/annotation_to_bed'
include { SAMTOOLS_FAIDX     } from '../modules/samtools/faidx'
include { SAMTOOLS_INDEX     } from '../modules/samtools/index'
include { CNVKIT_ACCESS      } from '../modules/cnvkit/access'
include { CNVKIT_TARGET      } from '../modules/cnvkit/target'
include { CNVKIT_ANTITARGET  } from '../modules/cnvkit/antitarget'
include { CNVKIT_COVERAGE    } from '../modules/cnvkit/coverage'
include { CNVKIT_REFERENCE   } from '../modules/cnvkit/reference'
include { CNVKIT_FIX         } from '../modules/cnvkit/fix'
include { CNVKIT_SEGMENT     } from '../modules/cnvkit/segment'
include { CNVKIT_CALL        } from '../modules/cnvkit/call'
include { CNVKIT_GENEMETRICS } from '../modules/cnvkit/genemetrics'
include { CNVKIT_SEX         } from '../modules/cnvkit/sex'

// The BAM index beside a BAM (`x.bam.bai` or `x.bai`, not older than the BAM), or null when
// it must be built (CNVkit would otherwise rebuild a stale one through its staged link).
def bamIndex(bam) {
    def candidates = [file("${bam}.bai"), file(bam.toString().replaceFirst(/\.bam$/, '.bai'))]
    return candidates.find { candidate ->
        candidate.exists() && candidate.lastModified() >= bam.lastModified()
    }
}

workflow CNVKIT {
    take:
    samples     // channel: [ meta (id, role: experimental|control), bam ]
    fasta       // path: reference FASTA
    bed         // path: target BED or Picard interval list
    annotation  // path or []: gene annotation (GFF3, GTF, refFlat or BED)
    outdir      // string: where pipeline_info/versions.yml goes

    main:
    // Nothing else starts before every input passed its checks (the FASTA's index is used when
    // there is an up-to-date one; without it the check reads the contigs from the FASTA).
    names_bams = samples
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { rows -> [rows.collect { row -> row[0].id }, rows.collect { row -> row[1] }] }
    fai = file("${fasta}.fai")
    CHECK_INPUTS([fasta, fai.exists() ? fai : []], bed, annotation, names_bams)
    checked = CHECK_INPUTS.out.report

    // Reference and BAM indexes: used when present, built when missing.
    fasta_in = channel.of(fasta).combine(checked).map { f, _ok -> f }.branch { f ->
        indexed: file("${f}.fai").exists()
        missing: true
    }
    SAMTOOLS_FAIDX(fasta_in.missing)
    reference_fasta = fasta_in.indexed
        .map { f -> [f, file("${f}.fai")] }
        .mix(SAMTOOLS_FAIDX.out.fasta_fai)
        .first()

    bams_in = samples.combine(checked).map { meta, bam, _ok -> [meta, bam] }.branch { _meta, bam ->
        indexed: bamIndex(bam) != null
        missing: true
    }
    SAMTOOLS_INDEX(bams_in.missing)
    bams = bams_in.indexed
        .map { meta, bam -> [meta, bam, bamIndex(bam)] }
        .mix(SAMTOOLS_INDEX.out.bam_bai)
    targets_bed = channel.value(bed).combine(checked).map { b, _ok -> b }

    ANNOTATION_TO_BED(channel.fromList(annotation ? [annotation] : []))
    gene_bed = ANNOTATION_TO_BED.out.bed.ifEmpty([]).first()

    CNVKIT_ACCESS(reference_fasta)
    CNVKIT_TARGET(targets_bed, gene_bed)
    targets = CNVKIT_TARGET.out.bed.first()
    CNVKIT_ANTITARGET(targets, CNVKIT_ACCESS.out.bed)
    antitargets = CNVKIT_ANTITARGET.out.bed.first()

    CNVKIT_COVERAGE(bams, targets, antitargets)
    coverage = CNVKIT_COVERAGE.out.cnn

    // Pooled reference from the controls, flat when there are none.
    control_cnn = coverage
        .filter { meta, _target, _antitarget -> meta.role == 'control' }
        .flatMap { _meta, target, antitarget -> [target, antitarget] }
        .toSortedList { a, b -> a.name <=> b.name }
    CNVKIT_REFERENCE(control_cnn, targets, antitargets, reference_fasta)

    experimental_cnn = coverage.filter { meta, _target, _antitarget -> meta.role == 'experimental' }
    CNVKIT_FIX(experimental_cnn, CNVKIT_REFERENCE.out.cnn.first())
    CNVKIT_SEGMENT(CNVKIT_FIX.out.cnr)
    CNVKIT_CALL(CNVKIT_SEGMENT.out.cns)
    CNVKIT_GENEMETRICS(CNVKIT_FIX.out.cnr.join(CNVKIT_SEGMENT.out.cns))

    sex_inputs = coverage
        .map { _meta, target, _antitarget -> target }
        .mix(CNVKIT_FIX.out.cnr.map { _meta, cnr -> cnr })
        .toSortedList { a, b -> a.name <=> b.name }
        .filter { files -> files }  // empty only when a failed check is ending the run
    CNVKIT_SEX(sex_inputs)

    // One versions file for the run: process, tool and version of every substep that ran.
    channel.empty()
        .mix(
            SAMTOOLS_FAIDX.out.versions, SAMTOOLS_INDEX.out.versions, CHECK_INPUTS.out.versions,
            ANNOTATION_TO_BED.out.versions, CNVKIT_ACCESS.out.versions, CNVKIT_TARGET.out.versions,
            CNVKIT_ANTITARGET.out.versions, CNVKIT_COVERAGE.out.versions,
            CNVKIT_REFERENCE.out.versions, CNVKIT_FIX.out.versions, CNVKIT_SEGMENT.out.versions,
            CNVKIT_CALL.out.versions, CNVKIT_GENEMETRICS.out.versions, CNVKIT_SEX.out.versions
        )
        .unique()
        .map { process, tool, version -> "${process.tokenize(':').last()}:\n  ${tool}: ${version}" }
        .collectFile(name: 'versions.yml', storeDir: "${outdir}/pipeline_info", sort: true, newLine: true)

    emit:
    reference   = CNVKIT_REFERENCE.out.cnn
    cnr         = CNVKIT_FIX.out.cnr
    cns         = CNVKIT_SEGMENT.out.cns
    calls       = CNVKIT_CALL.out.cns
    genemetrics = CNVKIT_GENEMETRICS.out.tsv
    sex         = CNVKIT_SEX.out.tsv
}
