//! The default generator: no network, answers in the diary's language (Korean or English)
//! and fits its emotion. An optional latency models a slow AI provider in load tests.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{CommentGenerator, DiaryPrompt, GenerateError, is_mostly_korean};
use crate::diary::Emotion;

#[derive(Debug, Clone)]
pub struct OfflineGenerator {
    latency: Duration,
}

impl OfflineGenerator {
    pub fn new(latency: Duration) -> Self {
        Self { latency }
    }
}

fn korean(emotion: Emotion) -> [&'static str; 2] {
    match emotion {
        Emotion::Joy => [
            "기쁜 하루를 보내셨군요! 그 행복한 마음이 글에서도 느껴져요.",
            "좋은 일이 있었다니 저도 덩달아 기뻐요. 오늘의 기쁨을 오래 기억하세요.",
        ],
        Emotion::Calm => [
            "차분한 하루였네요. 이런 평온함이 마음에 좋은 쉼이 되길 바라요.",
            "잔잔한 하루의 기록이 참 따뜻해요. 오늘의 여유를 잘 간직하세요.",
        ],
        Emotion::Gratitude => [
            "감사한 마음을 기록해 주셨네요. 그 마음이 주변까지 따뜻하게 해줄 거예요.",
            "고마운 순간을 알아차리는 당신이 멋져요. 오늘의 감사를 오래 기억하세요.",
        ],
        Emotion::Sadness => [
            "많이 속상하셨겠어요. 슬픈 마음을 이렇게 적어 준 것만으로도 큰 용기예요.",
            "힘든 하루였네요. 당신의 마음이 조금씩 가벼워지길 진심으로 바라요.",
        ],
        Emotion::Anxiety => [
            "불안한 마음이 드셨군요. 지금 느끼는 감정은 자연스러운 거예요. 천천히 숨을 골라 보세요.",
            "걱정이 많은 하루였네요. 하나씩 해 나가면 괜찮아질 거예요. 당신은 잘하고 있어요.",
        ],
        Emotion::Anger => [
            "화가 날 만한 일이었네요. 그 감정을 솔직하게 적어 준 것이 정말 중요해요.",
            "많이 답답하셨겠어요. 오늘은 스스로에게 조금 더 너그러워져도 괜찮아요.",
        ],
        Emotion::Tiredness => [
            "오늘 정말 수고 많으셨어요. 푹 쉬면서 스스로를 돌봐 주세요.",
            "지친 하루였네요. 충분히 쉬어도 괜찮아요. 내일은 조금 더 가벼운 하루가 되길 바라요.",
        ],
    }
}

fn english(emotion: Emotion) -> [&'static str; 2] {
    match emotion {
        Emotion::Joy => [
            "What a happy day! Your joy comes through every line.",
            "I'm so glad something good happened. Hold on to this feeling.",
        ],
        Emotion::Calm => [
            "A calm day is a gift. I hope this quiet gives you rest.",
            "There is something warm in this peaceful entry. Keep this ease with you.",
        ],
        Emotion::Gratitude => [
            "Thank you for writing down what you're grateful for. That warmth spreads.",
            "Noticing the good moments is a strength. Remember today's gratitude.",
        ],
        Emotion::Sadness => [
            "That sounds really painful. Writing it down took courage.",
            "I'm sorry today was hard. I hope your heart feels a little lighter soon.",
        ],
        Emotion::Anxiety => [
            "Feeling anxious is understandable. Take a slow breath; one step at a time.",
            "That's a lot to worry about. You're doing better than you think.",
        ],
        Emotion::Anger => [
            "That sounds genuinely frustrating. It matters that you named the feeling.",
            "Anyone would be upset by that. Be gentle with yourself tonight.",
        ],
        Emotion::Tiredness => [
            "You worked hard today. Please rest and take care of yourself.",
            "What a draining day. It's okay to rest; tomorrow can be lighter.",
        ],
    }
}

impl CommentGenerator for OfflineGenerator {
    fn generate<'a>(&'a self, diary: &'a DiaryPrompt) -> BoxFuture<'a, Result<String, GenerateError>> {
        Box::pin(async move {
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            let text = format!("{} {}", diary.title, diary.content);
            let choices = if is_mostly_korean(&text) { korean(diary.emotion) } else { english(diary.emotion) };
            // Deterministic per diary, so a retried job writes the same words.
            Ok(choices[(diary.diary_id % 2) as usize].to_string())
        })
    }

    fn name(&self) -> &'static str {
        "offline"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(title: &str, content: &str, emotion: Emotion) -> DiaryPrompt {
        DiaryPrompt { diary_id: 7, title: title.into(), content: content.into(), emotion }
    }

    #[tokio::test]
    async fn answers_korean_diaries_in_korean() {
        let reply = OfflineGenerator::new(Duration::ZERO)
            .generate(&prompt("오늘", "시험에 떨어져서 너무 슬펐다", Emotion::Sadness))
            .await
            .unwrap();
        assert!(is_mostly_korean(&reply), "{reply}");
    }

    #[tokio::test]
    async fn answers_english_diaries_in_english_and_fits_the_emotion() {
        let generator = OfflineGenerator::new(Duration::ZERO);
        let sad = generator.generate(&prompt("Today", "I failed my exam", Emotion::Sadness)).await.unwrap();
        let joy = generator.generate(&prompt("Today", "I passed my exam", Emotion::Joy)).await.unwrap();
        assert!(!is_mostly_korean(&sad));
        assert_ne!(sad, joy);
        assert!(english(Emotion::Sadness).contains(&sad.as_str()));
    }
}
