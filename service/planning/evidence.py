"""Guideline sources (guidance §10) and the evidence behind each built-in rule.

Every rule function in ``gates.py`` and ``rules.py`` is registered here with the sources it
encodes and a one-line summary; the engine copies the entry into the plan's
``evidence[]`` whenever the rule fires. Tags: [V] verified, [V2] secondary
source, [U] unverified, [D] design decision that needs clinical sign-off.
"""

from __future__ import annotations

SOURCES: dict[str, str] = {
    "CLINIC": "Clinic exercise page (source page of refflow)",
    "TFTF2014": "Giangregorio et al. Too Fit To Fracture. Osteoporos Int 2014;25:821-835",
    "TFTF2015": "Giangregorio et al. Too Fit To Fracture Delphi. Osteoporos Int 2015;26:891-910",
    "ROS2022": "Brooke-Wavell et al. Strong, steady and straight. Br J Sports Med 2022;56:837-846",
    "ESSA2017": "Beck et al. ESSA position statement. J Sci Med Sport 2017;20:438-445",
    "LIFTMOR2018": "Watson et al. LIFTMOR RCT. J Bone Miner Res 2018;33:211-220",
    "ACSM2004": "Kohrt et al. ACSM Position Stand: physical activity and bone health. MSSE 2004;36:1985",
    "ACSM_GETP": "ACSM's Guidelines for Exercise Testing and Prescription: contraindications",
    "AHA2007": "Williams et al. Resistance exercise in CVD, 2007 update. Circulation 2007;116:572",
    "OTAGO": "Campbell & Robertson. Otago Exercise Programme",
    "SHERRINGTON2011": "Sherrington et al. Exercise to prevent falls in older adults. NSW PHB 2011;22:78",
    "COCHRANE2019": "Sherrington et al. Exercise for preventing falls. Cochrane 2019;CD012424",
    "ROS_VF_4_12WK": "ROS vertebral-fracture guidance via BMJ Best Practice",
    "NOGG": "NOGG UK clinical guideline, section 3",
    "REDFLAGS_SPINE": "NHS Gloucestershire G-Care: red flags for spinal conditions",
    "GC_RISK": "Glucocorticoid-induced osteoporosis summaries (FRAX adjustment; ACR 2022)",
    "SINAKI_YOGA": "Sinaki 2013 Pain Pract 13:68; Sfeir 2018 Eur J Phys Rehabil Med 54:947",
    "KOREA2023": "Bae et al. Exercise guidelines for osteoporosis. J Bone Metab 2023;30:149",
    "BONEFIT": "Bone Fit (Osteoporosis Canada): TFTF strength recommendations",
    "NICE_NG249": "NICE NG249. Falls: assessment and prevention in older people and in people 50 and over at higher risk (2025)",
    "BTS_PR2013": "Bolton et al. BTS guideline on pulmonary rehabilitation in adults. Thorax 2013;68:ii1-ii30",
    "WHO_TSCORE": "WHO Technical Report Series 843 (1994): T-score definitions of osteopenia and osteoporosis",
    "LEP_SAFETY": "US HHS Office for Civil Rights: language access for people with limited English proficiency (Title VI)",
    "DESIGN": "refflow design decision (conservative; needs clinical sign-off)",
}

# rule name -> (source keys, summary with verification tag)
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    # intake scope
    "diagnosis_in_scope": (("DESIGN",), "Only osteoporosis, osteopenia/low bone mass and high fracture risk are in scope; others are held, not planned [D]."),
    "age_in_scope": (("DESIGN",), "Adults only; under 18 is out of scope [D]."),
    "fracture_dates_valid": (("DESIGN",), "A fracture dated after the referral date is a data error [D]."),
    # risk
    "bone_category": (("ROS2022", "NOGG", "GC_RISK", "DESIGN"), "Category C: vertebral or >=2 low-trauma fractures, T<=-3.5, FRAX MOF>=30%/hip>=4.5%, unknown fracture history; B: osteoporosis, T<=-2.5, one fracture, FRAX 20/3 [V/V2/D]."),
    "glucocorticoid_upgrade": (("GC_RISK", "DESIGN"), "Prednisolone-equivalent >=7.5 mg/day for >=3 months moves the bone category up one level [V2; D]."),
    "falls_overlay": (("OTAGO", "ROS2022", "DESIGN"), "High falls risk: >=2 falls, injurious fall, walking aid, fear of falling, age 80+ with a fall, or unknown history [V; thresholds D]."),
    # urgent gates
    "suspected_vertebral_fracture": (("NOGG", "REDFLAGS_SPINE", "DESIGN"), "Acute severe spinal pain or sudden back pain after minor trauma needs vertebral fracture assessment before exercise [V; thresholds D]."),
    "spinal_red_flag": (("REDFLAGS_SPINE",), "Cauda equina, cord compression, cancer or infection red flags need urgent medical assessment [V]."),
    "blood_pressure_urgent": (("AHA2007", "OTAGO", "ACSM_GETP"), "Resting BP >=180/110 is an absolute contraindication to resistance training [V2]."),
    "unstable_cardiopulmonary": (("ACSM_GETP", "AHA2007"), "Unstable angina, recent MI, decompensated HF, uncontrolled arrhythmia, acute PE/DVT, myo/pericarditis, dissection, acute systemic illness: absolute contraindications [V]."),
    # review gates
    "recent_fracture": (("ROS_VF_4_12WK", "DESIGN"), "Exercise after a vertebral fracture is individualised from 4-12 weeks; other recent fractures carry unknown surgical precautions [V2; D]."),
    "multiple_vertebral_fractures": (("TFTF2015", "TFTF2014", "DESIGN"), "Multiple vertebral fractures or painful hyperkyphosis: PT assessment recommended [V; D]."),
    "back_pain": (("CLINIC", "NOGG", "DESIGN"), "Significant or new back pain needs assessment; see a PT if in pain [given; D]."),
    "frailty_review": (("NICE_NG249", "OTAGO", "DESIGN"), "Living with frailty (very old age, a walking aid, unable to get up from the floor, living alone) is case-found for a multifactorial falls assessment, not only repeated falls; two signs, or one with a fall, hold the plan [V; thresholds D]."),
    "past_conditions": (("ACSM_GETP", "DESIGN"), "Only an acute or current condition is an absolute contraindication; one the referral calls past, resolved or stable is a caution for the reviewer [V; D]."),
    "language_review": (("LEP_SAFETY", "DESIGN"), "A patient who prefers a language the handout is not written in needs an interpreter or a translated handout before the plan goes out [V2; D]."),
    "falls_review": (("ROS2022", "OTAGO", "SHERRINGTON2011"), "Repeated or injurious falls, or a walker/wheelchair: falls service or PT-delivered Otago [V]."),
    "cardiovascular_review": (("CLINIC", "ACSM_GETP", "AHA2007"), "Known heart disease: medical clearance; aerobic effort capped at moderate until cleared [U/V2]."),
    "blood_pressure_review": (("AHA2007",), "BP 160-179 / 100-109 is a relative contraindication to resistance training [V2]."),
    "comorbidity_review": (("OTAGO", "ESSA2017", "ACSM_GETP", "BTS_PR2013", "DESIGN"), "Neurological/vestibular, cognitive, inflammatory arthritis (flare or status unknown), severe OA, uncontrolled metabolic disease, recent surgery, cancer, pregnancy, severe lung disease or long-term oxygen (pulmonary rehabilitation, BTS): tailoring needed [V/D]."),
    "age_premenopausal_review": (("DESIGN",), "Guidelines target postmenopausal women and men >=50; younger adults need a secondary-cause work-up [D]."),
    "glucocorticoid_review": (("GC_RISK",), "Very high glucocorticoid dose or a fracture while on glucocorticoids: very high risk [V2]."),
    "missing_fracture_history": (("DESIGN",), "Unknown fracture history cannot rule out a vertebral fracture [D]."),
    "diagnosis_consistency": (("WHO_TSCORE", "NOGG", "DESIGN"), "Diagnosis, T-score and fracture history must agree in both directions: osteopenia is -1.0 to -2.5; osteoporosis is -2.5 or lower unless a fragility fracture or high FRAX makes it a clinical diagnosis [V; D]."),
    "referrer_restrictions": (("DESIGN",), "Free-text restrictions from the referrer cannot be interpreted safely by the engine [D]."),
    # soft flags
    "soft_flags": (("TFTF2014", "ROS2022", "LIFTMOR2018", "CLINIC"), "Recommend PT (category C, new to exercise, pain 4-6), falls service (high falls risk), supervised program for heavy lifting or jumping goals [V]."),
    "vocabulary": (("DESIGN",), "Conditions and medications the vocabulary does not recognise are listed for the reviewer [D]."),
    "medication_cautions": (("DESIGN",), "Beta-blockers, anticoagulants, fall-risk drugs and glucose-lowering drugs change how a session is monitored [U/D]."),
    # prescription
    "impact_limit": (("ROS2022", "ACSM2004", "CLINIC", "SHERRINGTON2011", "ESSA2017"), "Max impact: A moderate, B low, C low; low with high falls risk, pain >=4 or osteoarthritis [V; D]."),
    "no_high_impact": (("CLINIC", "LIFTMOR2018", "KOREA2023"), "High impact (jump rope, plyometrics, high-impact aerobics, tennis) is excluded from home plans [given; D]."),
    "no_loaded_or_end_range_flexion": (("ESSA2017", "ROS2022", "TFTF2015", "SINAKI_YOGA"), "No loaded, end-range or rapid/repetitive spinal flexion [V]."),
    "no_loaded_or_end_range_rotation": (("TFTF2015", "CLINIC"), "No loaded, end-range or rapid twisting [V]."),
    "never_in_home_plan": (("CLINIC", "ESSA2017", "SINAKI_YOGA"), "Named avoid list: sit-ups, toe touches, forward folds, deep twists, jump rope... [V]."),
    "supervised_only": (("LIFTMOR2018",), "High-intensity lifting and plyometrics only in a supervised, screened program [V]."),
    "avoid_for_category": (("ROS2022", "TFTF2015", "DESIGN"), "Catalogue avoid-lists by bone category [V/D]."),
    "avoid_for_falls_risk": (("SHERRINGTON2011", "OTAGO", "DESIGN"), "Catalogue avoid-list for high falls risk [V/D]."),
    "impact_above_limit": (("ROS2022", "CLINIC"), "Exercises above the patient's impact limit are excluded [V]."),
    "no_spinal_flexion_category_c": (("ROS2022", "DESIGN"), "Category C or any vertebral fracture: no spinal-flexion exercises at all [D; ROS 'avoid high degree']."),
    "no_floor_exercises": (("TFTF2015", "DESIGN"), "No floor exercises with high falls risk or if the patient cannot rise from the floor [D]."),
    "no_brisk_walking_program_falls_risk": (("SHERRINGTON2011",), "High-risk people should not be prescribed brisk-walking programs [V]."),
    "balance_needs_support": (("OTAGO", "DESIGN"), "With high falls risk every balance exercise is done beside a stable support [D/Otago]."),
    "needs_gym_access": (("DESIGN",), "Machine exercises only with gym access [D]."),
    "jogging_only_if_habitual": (("ROS2022", "ACSM2004", "CLINIC"), "Jogging only for habitual runners in category A [V; D]."),
    "strength_all_major_groups": (("TFTF2014", "TFTF2015", "ROS2022", "OTAGO", "BONEFIT"), "Strength 2-3 non-consecutive days/week, one exercise per major muscle group, 8-12 reps, 1-3 sets; Otago leg set with high falls risk [V]."),
    "balance_every_plan": (("TFTF2014", "SHERRINGTON2011"), "Balance 15-20 min/day, >=2 h/week, static to dynamic, in every plan [V]."),
    "aerobic_low_impact": (("ACSM2004", "CLINIC", "TFTF2014", "TFTF2015", "OTAGO"), "Aerobic 3-5 days/week, low impact, building to 150 min/week; moderate only with vertebral fracture; walking with aid for high falls risk [V]."),
    "spinal_extensor_daily": (("TFTF2015", "ROS2022"), "Spinal-extensor/posture training daily, 5-10 min, 3-5 s holds [V; attribution U]."),
    "mobility_daily": (("CLINIC",), "Mobility daily after exercise, without extreme forward bending or twisting [given; holds U]."),
    "impact_loading_a": (("ROS2022", "KOREA2023", "DESIGN"), "Category A: moderate impact from phase 2, 10-20 building to ~50 per session, 3+ days/week [V; counts U/D]."),
    "concise_programme": (("TFTF2014", "TFTF2015", "DESIGN"), "About 8-12 exercises a session: 6-8 compound strength exercises covering all major groups, one short daily balance/extensor/mobility routine, more balance with high falls risk [V; counts D]."),
    "plugin_exercises": (("DESIGN",), "Plugin exercises that pass every safety rule are added [D]."),
    "effort_ceilings": (("BONEFIT", "TFTF2014", "TFTF2015", "DESIGN"), "Effort ceilings by phase (0-10): lower at first; C and high falls risk capped at 6 [V/D]."),
    "phases": (("CLINIC", "TFTF2014", "ROS2022", "DESIGN"), "Start slowly: familiarise (weeks 1-2), build (3-6), target (7-12), maintain (13+) [D]."),
    "weekly_schedule": (("TFTF2014", "ACSM2004"), "Strength on non-consecutive days, aerobic 3-5 days, balance daily, one rest day [V]."),
    "precautions": (("OTAGO", "REDFLAGS_SPINE", "DESIGN"), "Stop and seek care for chest pain, dizziness, severe breathlessness, new sudden back pain or an injurious fall [V]."),
    # engine-level
    "plugin_adjustment": (("DESIGN",), "Plugin adjustments are recorded with the plugin's name [D]."),
    "safety_enforcement": (("DESIGN",), "Safety rules run after plugins and cannot be overridden [D]."),
}


def evidence_entry(rule: str) -> dict:
    keys, summary = RULES[rule]
    return {"rule": rule, "source": "; ".join(SOURCES[k] for k in keys), "summary": summary}
